package opstate

import (
	"time"

	"github.com/d8da9184/opstate/storage"
)

// Waits between attempts to listen again after a change stream broke:
// from relistenFirst, doubling up to relistenMax.
const (
	relistenFirst = 10 * time.Millisecond
	relistenMax   = 500 * time.Millisecond
)

// listen follows the change stream of a backend that pushes changes
// ([storage.Notifier]), from its first listener l, until Close. Each
// report drops the keys it names from the cache and goes to the watchers
// (applyForeign), whether the backend pushes them (PostgreSQL's LISTEN)
// or the listener polls for them (SQLite's change log).
//
// The stream is lossy: when a listener fails, what was committed since its
// last report may never be reported. From the failure until a new listener
// listens, reads bypass the cache (stateBypass), unless
// Options.ServeStaleOnOutage; once one does, the cache is emptied and
// every watcher sent an OpReset (resync), so that nothing missed is
// served. A read is thus never staler than the listener's own bound for
// noticing a dead connection.
func (s *Store) listen(n storage.Notifier, l storage.Listener) {
	defer s.wg.Done()
	for {
		err := s.follow(l)
		l.Close()
		if s.ctx.Err() != nil {
			return
		}
		s.guard(func() {
			msg := "opstate: change stream lost; reads bypass the cache until it is back"
			if s.serveStale {
				msg = "opstate: change stream lost; reads serve the cache, which may be stale, until it is back"
			}
			s.log.Warn(msg, "err", err)
		})
		if l = s.relisten(n); l == nil {
			return // closed
		}
		s.resync()
		s.guard(func() { s.log.Info("opstate: change stream back; cache emptied") })
	}
}

// follow applies l's reports until it fails, and returns its error, with
// reads set to bypass the cache from the moment it fails.
//
// A listener that polls ([storage.Poller]) costs a query every interval,
// which matters only to reads served from the cache and to watchers: when
// it has found no read and no watcher for dormantAfter reports in a row,
// follow stops calling Next, and costs nothing while the Store is idle.
// The next Lookup (or Watch) then checks at once, in resume, and wakes
// it. No read is thus served from a cache older than one interval plus
// the check itself.
func (s *Store) follow(l storage.Listener) error {
	p, polls := l.(storage.Poller)
	s.syncMu.Lock()
	s.poller = p
	s.syncMu.Unlock()
	idle, reads := 0, s.reads()
	for {
		ch, err := l.Next(s.ctx)
		if err != nil {
			s.state.Or(stateBypass)
			if s.ctx.Err() == nil {
				s.counters.outages.Add(1)
				s.inOrder(s.feed.staleAllLocked)
			}
			return err
		}
		if ch.Foreign && s.using(func() { s.applyForeign(ch) }) != nil {
			return ErrClosed
		}
		if !polls {
			continue
		}
		if r := s.reads(); r != reads || s.feed.active() {
			idle, reads = 0, r
			continue
		}
		if idle++; idle < dormantAfter {
			continue
		}
		if !s.sleep() {
			return s.ctx.Err()
		}
		idle, reads = 0, s.reads()
	}
}

// sleep marks the poller dormant and waits for resume to wake it; it
// returns false at Close, and at once, true, when a watcher arrived as it
// decided to sleep.
func (s *Store) sleep() bool {
	if f := s.beforeDormant.Load(); f != nil {
		(*f)()
	}
	s.syncMu.Lock()
	s.state.Or(stateDormant)
	// A Watch that found the poller awake may have counted its watcher
	// since feed.active said none: it checks for dormancy after counting,
	// this checks for watchers after marking, so one of the two sees the
	// other (see Watch).
	if s.feed.active() {
		s.state.And(^uint32(stateDormant))
		s.syncMu.Unlock()
		return true
	}
	s.syncMu.Unlock()
	select {
	case <-s.ctx.Done():
		return false
	case <-s.wake:
		return true
	}
}

// relisten tries to listen until it succeeds, or returns nil at Close.
func (s *Store) relisten(n storage.Notifier) storage.Listener {
	wait := relistenFirst
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		var l storage.Listener
		var err error
		if s.using(func() { l, err = n.Listen(s.ctx) }) != nil {
			return nil
		}
		if err == nil {
			return l
		}
		if s.ctx.Err() != nil {
			return nil
		}
		wait = min(2*wait, relistenMax)
	}
}

// resync forgets everything cached and resets every watcher (the OpReset
// that ends their OpStale), now that a new listener reports every later
// change, then lets reads use the cache again. It holds servedOrder
// (order.go), so that no batch of writes is half applied to the cache
// meanwhile.
func (s *Store) resync() {
	s.inOrder(func() {
		s.cache.Clear()
		s.counters.flushes.Add(1)
		// Fresh before the OpReset is queued: a watcher that asks Stale
		// on receiving it must hear false.
		s.state.And(^uint32(stateBypass))
		s.feed.freshAllLocked()
	})
}

// Stale reports whether the Store has stopped seeing others' writes as it
// promises: true while the change stream of its backend (PostgreSQL's
// LISTEN) is down, from the moment the Store notices until it listens
// again. Meanwhile reads bypass the cache, or, with
// Options.ServeStaleOnOutage, may serve values others have since changed.
// Watchers are sent OpStale when it turns true and OpReset when it turns
// false. A Store on SQLite, whose file the Store polls, is never stale;
// nor is a closed Store.
func (s *Store) Stale() bool {
	return s.state.Load()&(stateBypass|stateClosed) == stateBypass
}
