package opstate

import "sync"

// servedOrder is the lock that orders what this Store's reads serve and
// what its watchers hear: every commit of this Store's writes
// (committer.commit), every report of others' changes (applyForeign), every
// batch of a sweep (sweepBatch), the outage and resync of a change stream,
// and the events each of them sends. Whoever changes what the cache serves
// holds it from before the change until its events are queued, so that
// the events of one key reach watchers in the order its reads serve its
// values. It also guards the feed's lists of watchers.
//
// The one rule: it is taken inside the Store's inFlight read lock
// ([Store.using]), never the other way round. Close takes inFlight for
// writing, which blocks new readers while it waits for those inside; a
// goroutine that held servedOrder and then entered inFlight would wait
// behind Close, while Close waited for a writer inside inFlight that waits
// for servedOrder: a deadlock. [Store.inOrder] enters both in that order;
// code that already runs inside using (a write, applyForeign) calls lock
// itself, and says so.
type servedOrder struct {
	mu sync.Mutex
}

func (o *servedOrder) lock()   { o.mu.Lock() }
func (o *servedOrder) unlock() { o.mu.Unlock() }

// inOrder runs f inside [Store.using] and under the feed's servedOrder, in
// the order the rule asks; it returns ErrClosed without running f after
// Close.
func (s *Store) inOrder(f func()) error {
	return s.using(func() {
		s.feed.order.lock()
		defer s.feed.order.unlock()
		f()
	})
}
