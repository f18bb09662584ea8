package opstate

import (
	"sync/atomic"
	"unsafe"
)

// Stats holds a Store's counters, each monotonic since [Open], and the
// current size of its cache; [Store.Stats] returns it. Calls refused
// before they reach the cache or SQLite (bad names or TTLs, a closed
// Store, a write refused for damage seen before) count nowhere.
type Stats struct {
	Hits          uint64 // Gets and Lookups answered from the cache, negative entries included
	Misses        uint64 // Gets and Lookups that read storage (SQLite or PostgreSQL)
	Evictions     uint64 // entries dropped to stay within CacheBytes
	Invalidations uint64 // entries dropped because another connection changed them
	Flushes       uint64 // whole-cache drops (foreign change not pinned down, failed check, change stream back after an outage)
	Writes        uint64 // writes committed or failed (requests given to group commit)
	Commits       uint64 // transactions; Writes/Commits is the mean batch (a failed batch retried write by write counts once)
	WriteErrors   uint64 // writes that returned an error, of those counted in Writes
	Expired       uint64 // rows deleted by sweeps (DeleteExpired and the background sweeper)
	WatchResets   uint64 // OpReset events sent to watchers
	StreamOutages uint64 // times the change stream of a backend that pushes changes (PostgreSQL's LISTEN) failed; always 0 on SQLite
	Entries       int    // entries cached now, negative ones included
	Bytes         int64  // bytes the cache accounts against CacheBytes now
}

// Stats returns the Store's counters and the current size of its cache
// (which includes what [Store.CacheStats] reports). It is safe to call
// concurrently with every other method, and after [Store.Close], when it
// returns the final counts (and an empty cache). An operation is counted
// before it returns: a Get, a write or a [Store.DeleteExpired] that has
// returned is in every later Stats. The fields are read one by one, not
// as of one instant, so a Stats taken while operations run may count one
// of them in one field and not yet in a related one. Counting a cached
// Get writes no cache line that Gets running on other cores write.
func (s *Store) Stats() Stats {
	cs := s.cache.Stats()
	return Stats{
		Hits:          s.counters.hits.load(),
		Misses:        s.counters.misses.Load(),
		Evictions:     cs.Evictions,
		Invalidations: s.counters.invalidations.Load(),
		Flushes:       s.counters.flushes.Load(),
		Writes:        s.committer.writes.Load(),
		Commits:       s.committer.batches.Load(),
		WriteErrors:   s.committer.writeErrors.Load(),
		Expired:       s.counters.expired.Load(),
		WatchResets:   s.counters.watchResets.Load(),
		StreamOutages: s.counters.outages.Load(),
		Entries:       cs.Entries,
		Bytes:         cs.Bytes,
	}
}

// counters are the counts [Store.Stats] reports beside the committer's
// (Writes, Commits, WriteErrors) and the cache's (Evictions). Each is only
// ever added to.
type counters struct {
	hits   striped       // Lookups answered from the cache, in Lookup: the hot path
	misses atomic.Uint64 // Lookups that read SQLite, in load

	// invalidations counts the entries that the invalidation reader (the
	// poll of the change log in watch) drops for another connection's
	// commits; it adds to it.
	invalidations atomic.Uint64
	// flushes counts watch's drops of the whole cache.
	flushes atomic.Uint64
	// expired counts the rows sweepBatch deleted.
	expired atomic.Uint64
	// watchResets counts the OpReset events sent to watchers; Watch's
	// delivery adds to it.
	watchResets atomic.Uint64
	// outages counts the failures of the change stream that follow
	// notices (listen.go), Close's excepted.
	outages atomic.Uint64
}

// stripeBits is log2 of numStripes.
const stripeBits = 6

// numStripes is how many stripes a striped counter has.
const numStripes = 1 << stripeBits

// striped is a counter that goroutines running on different cores add to
// without writing a shared cache line, as a single atomic counter would
// make them do on every cached Get: an add goes to one of numStripes
// stripes, each alone on its line, and load sums them.
//
// The stripe is chosen by the address of a variable on the calling
// goroutine's stack. Goroutines that run at the same time have separate
// stacks (at least 2 KiB apart), so they mostly add to different stripes,
// whatever key they read: a hot key read on every core does not make them
// share one. Choosing costs no shared write either, as a round-robin index
// or a random number drawn from shared state would. A goroutine keeps its
// stripe while its stack stays put; any stripe is correct, and two
// goroutines that land on one merely share a line, as all would with a
// single counter.
//
// An add is still one atomic (LOCK-prefixed) instruction on the stripe's
// line, which the core holds exclusively: no other core's add waits for
// it. BenchmarkCounter compares it with a single atomic counter.
type striped struct {
	stripes [numStripes]stripe
}

// stripe is one stripe of a striped counter, padded on both sides so that
// it shares no 64-byte line with another stripe or with the fields around
// the counter, and no 128-byte pair of lines (which adjacent-line
// prefetchers fetch together) with another stripe.
type stripe struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// add adds one to the counter.
func (c *striped) add() {
	// A variable of size zero has an address in the frame, and no store
	// initializes it: the atomic add would wait for such a store, just
	// issued, to drain, which makes a cached Get measurably slower
	// (BenchmarkGet).
	// (A compiler that gave every such variable one address would send
	// every add to one stripe: slower, still exact. TestStripesSpread
	// checks.)
	var onStack struct{}
	// Above bit 11 the address tells stacks apart; Fibonacci hashing
	// spreads those bits over the top ones, so that stacks next to one
	// another fall on distinct stripes (eight in a row of one size, from
	// 2 KiB to 1 MiB, take eight).
	h := uint64(uintptr(unsafe.Pointer(&onStack))>>11) * 0x9E3779B97F4A7C15
	c.stripes[h>>(64-stripeBits)].n.Add(1)
}

// load returns the counter's value: the sum of its stripes, read one by
// one. Every add that returned before load was called is in it.
func (c *striped) load() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
