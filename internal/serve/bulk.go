package serve

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// flagSet is the bulk evaluation of the flags namespace at one moment:
// its ETag and its flags' evaluations as a JSON array, with what it was
// computed from, to tell whether it still holds.
type flagSet struct {
	etag  string
	flags []byte // [evaluation or evaluationFailure, ...], sorted by key
	// keys and values are the namespace's as List returned them; seq and
	// gen were the feed's flagSeq and bulkCache.gen before the List.
	keys, values []string
	seq, gen     uint64
}

// bulkCache keeps the last flagSet computed while Serve runs, so that a
// bulk evaluation, and above all its 304, need not list the namespace
// from the database while no flag changed. It holds the flags
// namespace's feed (a Watch shared with the OFREP streams) to learn of
// changes; a flagSet still holds while the feed recorded no change of a
// flag since, the server made no write to the namespace since (gen,
// bumped before the write is answered: a client that wrote a flag sees it
// in its next bulk evaluation, whether or not the Watch has delivered the
// change yet), and each of its keys still has its value in the Store (a
// Lookup from the cache each, which also sees a flag expire). Without
// Serve running, every bulk evaluation lists the namespace.
type bulkCache struct {
	mu      sync.Mutex // guards serving, feed and last
	serving bool
	feed    *feed
	last    *flagSet

	gen atomic.Uint64 // bumped by each write of the server's to the flags namespace
}

// cached returns the flags namespace's feed, subscribing to it while Serve
// runs, and the last flagSet; both nil without Serve, the feed nil if the
// Watch failed.
func (s *Server) cached() (*feed, *flagSet) {
	c := &s.bulkCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving {
		return nil, nil
	}
	if c.feed != nil {
		select {
		case <-c.feed.closed: // the Store closed: so does the cache
			s.feeds.unsubscribe(c.feed)
			c.feed, c.last = nil, nil
		default:
		}
	}
	if c.feed == nil {
		f, _, err := s.feeds.subscribe(s.store, s.opts.FlagsNamespace)
		if err != nil {
			return nil, nil
		}
		c.feed = f
	}
	return c.feed, c.last
}

// startBulkCache lets bulk evaluations cache their flagSet; Serve calls it.
func (s *Server) startBulkCache() {
	s.bulkCache.mu.Lock()
	defer s.bulkCache.mu.Unlock()
	s.bulkCache.serving = true
}

// stopBulkCache drops the cache and its feed; Serve calls it when it ends.
func (s *Server) stopBulkCache() {
	c := &s.bulkCache
	c.mu.Lock()
	f := c.feed
	c.serving, c.feed, c.last = false, nil, nil
	c.mu.Unlock()
	if f != nil {
		s.feeds.unsubscribe(f)
	}
}

// wroteFlags notes a write of the server's to namespace ns, before the
// write is answered: a cached flagSet of ns no longer holds.
func (s *Server) wroteFlags(ns string) {
	if ns == s.opts.FlagsNamespace {
		s.bulkCache.gen.Add(1)
	}
}

// flagSet returns the current bulk evaluation of the flags namespace: the
// cached one while it holds, else one made from a List, which is cached.
func (s *Server) flagSet() (*flagSet, error) {
	f, last := s.cached()
	if last != nil && s.holds(f, last) {
		return last, nil
	}
	var seq uint64
	if f != nil {
		seq = f.flagsChanged()
	}
	gen := s.bulkCache.gen.Load()
	m, err := s.store.List(s.opts.FlagsNamespace)
	if err != nil {
		return nil, err
	}
	fs := s.newFlagSet(m)
	fs.seq, fs.gen = seq, gen
	if f != nil {
		c := &s.bulkCache
		c.mu.Lock()
		if c.feed == f && (c.last == nil || c.last.seq <= seq && c.last.gen <= gen) {
			c.last = fs
		}
		c.mu.Unlock()
	}
	return fs, nil
}

// holds reports whether fs is still the flags namespace's evaluation (see
// bulkCache).
func (s *Server) holds(f *feed, fs *flagSet) bool {
	if f.flagsChanged() != fs.seq || s.bulkCache.gen.Load() != fs.gen {
		return false
	}
	for i, k := range fs.keys {
		v, ok, err := s.store.Lookup(s.opts.FlagsNamespace, k)
		if err != nil || !ok || v != fs.values[i] {
			return false
		}
	}
	return true
}

// newFlagSet evaluates the flags of m, a List of the flags namespace.
func (s *Server) newFlagSet(m map[string]string) *flagSet {
	fs := &flagSet{etag: setETag(m), keys: slices.Sorted(maps.Keys(m))}
	fs.values = make([]string, len(fs.keys))
	flags := make([]any, 0, len(m))
	for i, k := range fs.keys {
		fs.values[i] = m[k]
		if !utf8.ValidString(k) {
			continue // JSON cannot name it, nor OFREP's providers ask for it
		}
		if ev, fail := s.evaluate(k, m[k]); fail != nil {
			flags = append(flags, fail)
		} else {
			flags = append(flags, ev)
		}
	}
	fs.flags, _ = json.Marshal(flags) // this package's types always encode
	return fs
}

// flagsChanged returns the number of the feed's latest change of a flag.
func (f *feed) flagsChanged() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.flagSeq
}
