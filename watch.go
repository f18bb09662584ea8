package opstate

import (
	"context"
	"strconv"
	"sync/atomic"
)

// Op says what an [Event] reports.
type Op int

const (
	// OpSet: the key was set to Event.Value (Set, SetWithTTL, SetIfAbsent,
	// CompareAndSwap, or anyone else's write).
	OpSet Op = iota + 1
	// OpDelete: the key was deleted (Delete, CompareAndDelete, or anyone
	// else's delete).
	OpDelete
	// OpExpire: the key expired and a sweep deleted its row, or another
	// connection's write left it expired.
	OpExpire
	// OpReset: anything in the namespace may have changed (DeleteNamespace,
	// or events were lost); re-read it with [Store.List]. Event.Key is "".
	OpReset
	// OpStale: the Store has stopped seeing others' writes as it promises,
	// because the change stream of its backend (PostgreSQL's LISTEN) is
	// down: until the OpReset that follows once it is back, others'
	// changes are not sent, and reads bypass the cache (or, with
	// Options.ServeStaleOnOutage, may be stale). [Store.Stale] tells the
	// same. Event.Key is "". A Store on SQLite never sends it.
	OpStale
)

// String returns the name of op: "set", "delete", "expire", "reset" or
// "stale".
func (op Op) String() string {
	switch op {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpReset:
		return "reset"
	case OpStale:
		return "stale"
	}
	return "Op(" + strconv.Itoa(int(op)) + ")"
}

// Event is one change to a namespace, sent by [Store.Watch].
type Event struct {
	Namespace string
	Key       string // "" for OpReset and OpStale
	Op        Op
	Value     string // the value set, for OpSet
}

// MaxPendingEvents is how many keys' changes a watched namespace keeps for
// consumers that do not keep up: a consumer behind by more keys than that
// gets one OpReset in their place. It bounds the memory of watching: see
// [Store.Watch].
const MaxPendingEvents = 4096

// Watch returns a channel of the changes to namespace committed after
// Watch returns: by this Store at once, by anyone else writing the file
// (other Stores and processes, the opstate command, plain SQL) within
// SyncInterval. An event is sent only once this Store's reads serve the
// change it reports: a Get on receiving it returns that value or a newer
// one.
//
// Events of one key arrive in commit order. A consumer that falls behind
// never slows writers, readers or other watchers: the events waiting for it
// are coalesced per key, the latest winning, and when more than
// [MaxPendingEvents] keys wait, they are replaced by one OpReset, after
// which the consumer re-reads the namespace with [Store.List]. No event is
// dropped without an OpReset in its place.
//
// What waits for consumers is held outside [Options.CacheBytes], once per
// namespace however many watch it: the latest change of each of the last
// MaxPendingEvents keys changed, a node of about 100 bytes each on a
// 64-bit system, whose keys and values are the strings written, not
// copies. A watcher adds its goroutine and channel, a few KB, and,
// while its consumer is behind, a batch of at most 64 events it has
// taken and not yet sent. A write's cost does not grow with the number of
// watchers: it records the change once, and each watcher takes it on its
// own goroutine. Waking a namespace's watchers is paced so that, under a
// flood of writes, they take about half a processor at most: a namespace
// of N watchers is woken again no sooner than about N×4µs after its last
// wake (40 ms for 10,000), with every change since, coalesced per key, and
// no later than about N×8ms (80 ms for 10), however many events its
// watchers send meanwhile; a namespace of few watchers, or of rare
// writes, is woken at once. Cancel
// the ctx of a watch whose channel is no longer read.
//
// Others' changes are read from the file's change log: each key another
// connection changed arrives as the key's state when this Store read it
// (OpSet with its value, OpDelete, or OpExpire when the row is gone by a
// sweep that found it expired by SQLite's clock, or is there but
// expired); several changes of a key between two checks arrive as one.
// Another connection's change of more than 64 keys of the namespace in one
// check (its DeleteNamespace, say) arrives as an OpReset; of fewer, key by
// key. This Store's DeleteNamespace always sends an OpReset. A Store
// opened with a negative SyncInterval sends only its own changes.
//
// The channel is closed when ctx ends or the Store is closed. Watch
// returns [ErrClosed] after Close, [ErrEmptyName] for an empty namespace,
// and ctx's error if ctx has ended already.
func (s *Store) Watch(ctx context.Context, namespace string) (<-chan Event, error) {
	if err := s.checkNames(namespace); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{ch: make(chan Event), resets: &s.counters.watchResets}
	if err := s.using(func() {
		first := s.feed.add(namespace, w)
		if first {
			s.wg.Add(1) // under inFlight, so Close cannot be waiting on wg yet
			go func() {
				defer s.wg.Done()
				w.t.broadcast()
			}()
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(w.ch)
			defer s.feed.remove(w)
			w.deliver(ctx, s.ctx)
		}()
	}); err != nil {
		return nil, err
	}
	// A watcher needs the poller. Checked after the watcher is counted
	// (feed.add), as the poller checks for watchers after it marks itself
	// dormant (Store.sleep): one of the two sees the other. Not inside using,
	// as resume enters.
	if s.state.Load()&stateDormant != 0 {
		s.resume()
	}
	return w.ch, nil
}

// feed sends changes to the watchers of their namespaces, through one
// topic (topic.go) a watched namespace.
type feed struct {
	// n counts the watchers, so that writes skip the feed when there are
	// none.
	n atomic.Int32

	// order orders the changes sent, and guards byNS: see order.go.
	order servedOrder
	byNS  map[string]*topic
}

// add makes w a watcher of ns, starting at the changes recorded from now
// on, and reports whether it is the namespace's first: the caller then
// starts the topic's broadcaster, which remove stops with the last.
func (f *feed) add(ns string, w *watcher) (first bool) {
	f.order.lock()
	defer f.order.unlock()
	if f.byNS == nil {
		f.byNS = make(map[string]*topic)
	}
	t := f.byNS[ns]
	if t == nil {
		t, first = newTopic(ns), true
		f.byNS[ns] = t
	}
	t.watchers.Add(1)
	w.t, w.cur = t, t.start()
	f.n.Add(1)
	return first
}

func (f *feed) remove(w *watcher) {
	f.order.lock()
	defer f.order.unlock()
	if w.t.watchers.Add(-1) == 0 {
		delete(f.byNS, w.t.ns)
		close(w.t.done)
	}
	f.n.Add(-1)
}

// active reports whether anyone watches; a hint, read without the lock.
func (f *feed) active() bool { return f.n.Load() > 0 }

// watchedLocked reports whether ns has watchers. Called under order.
func (f *feed) watchedLocked(ns string) bool { return f.byNS[ns] != nil }

// sendLocked records ev for the watchers of its namespace, in a time that
// does not depend on how many there are. Called under order; it never
// blocks.
func (f *feed) sendLocked(ev Event) {
	t := f.byNS[ev.Namespace]
	if t == nil {
		return
	}
	switch ev.Op {
	case OpReset:
		t.reset()
	case OpStale:
		t.stale()
	default:
		t.put(ev.Key, ev.Value, ev.Op)
	}
}

// resetAllLocked records an OpReset for every watched namespace.
func (f *feed) resetAllLocked() {
	for _, t := range f.byNS {
		t.reset()
	}
}

// staleAllLocked records an OpStale for every watched namespace: the
// change stream is down.
func (f *feed) staleAllLocked() {
	for _, t := range f.byNS {
		t.stale()
	}
}

// freshAllLocked records for every watched namespace the OpReset that
// ends an OpStale, cancelling an OpStale not yet taken: the stream is
// back.
func (f *feed) freshAllLocked() {
	for _, t := range f.byNS {
		t.fresh()
	}
}

// watcher is one Watch call: its place in its namespace's topic, and the
// goroutine that delivers what it is owed.
type watcher struct {
	t      *topic
	cur    cursor // the deliver goroutine's, after add
	ch     chan Event
	resets *atomic.Uint64
}

// deliver sends what w is owed on w.ch, a batch at a time, until ctx or
// life ends. What waits for a slow consumer waits in the topic, shared
// with the namespace's other watchers; w holds one batch.
func (w *watcher) deliver(ctx, life context.Context) {
	var buf []owed
	for {
		var changed <-chan struct{}
		buf, changed = w.t.read(&w.cur, buf[:0])
		if len(buf) == 0 {
			buf = nil // an idle watcher holds no batch
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			case <-life.Done():
				return
			}
		}
		sent := 0
		for _, o := range buf {
			if o.c != nil && o.c.superseded.Load() {
				continue // a newer change of the key follows
			}
			select {
			case w.ch <- o.ev:
			case <-ctx.Done():
				return
			case <-life.Done():
				return
			}
			sent++
			if o.ev.Op == OpReset {
				w.resets.Add(1)
			}
		}
		w.t.sent.Add(int64(sent))
		clear(buf) // the values sent are the consumer's now
	}
}
