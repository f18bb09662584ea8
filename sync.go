package opstate

import (
	"github.com/d8da9184/opstate/storage"
)

// applyForeign reads the current value of each key others changed from
// SQLite, drops the keys from the cache, then sends their values to the
// watchers. It holds servedOrder (order.go) from before the reads until
// the changes are sent, so that no watcher is sent a change before this
// Store's reads serve it, nor after a newer change of this Store to the
// key. It runs inside [Store.using], as the lock's rule asks.
func (s *Store) applyForeign(ch storage.Changes) {
	f := &s.feed
	f.order.lock()
	defer f.order.unlock()
	if ch.Reset {
		s.cache.Clear()
		s.counters.flushes.Add(1)
		f.resetAllLocked()
		return
	}
	for _, ns := range ch.Namespaces {
		s.counters.invalidations.Add(uint64(s.cache.RemoveNamespace(ns)))
		if f.watchedLocked(ns) {
			f.sendLocked(Event{Namespace: ns, Op: OpReset})
		}
	}
	// The values are read before the drops: a read that misses between a
	// drop and the reading of the key's value could cache what the key held
	// before a commit that the reading then sees, and a Get on the event
	// would return that older value. A read after the drops reads SQLite
	// after the values were read, and one that began before fails to cache.
	var evs []Event
	for _, k := range ch.Keys {
		if f.watchedLocked(k.Namespace) {
			evs = append(evs, s.current(k, ch.Expired[k]))
		}
	}
	for _, k := range ch.Keys {
		if s.cache.Remove(k.Namespace, k.Key) {
			s.counters.invalidations.Add(1)
		}
	}
	for _, ev := range evs {
		f.sendLocked(ev)
	}
}

// current returns the event that brings a watcher to what k holds now in
// SQLite; an OpReset of its namespace if that cannot be read. swept says
// that the last change to k was another connection's delete of its expired
// row: a missing row is then an OpExpire. Called inside s.using.
func (s *Store) current(k storage.Key, swept bool) Event {
	ev := Event{Namespace: k.Namespace, Key: k.Key, Op: OpDelete}
	if swept {
		ev.Op = OpExpire
	}
	row, found, err := s.be.Get(s.ctx, k.Namespace, k.Key)
	if err == nil && found && row.ExpiresAt != 0 {
		var now int64
		if now, err = s.now(); err == nil && now >= row.ExpiresAt {
			ev.Op = OpExpire
			return ev
		}
	}
	switch {
	case err != nil:
		s.noteDamage(err)
		return Event{Namespace: k.Namespace, Op: OpReset}
	case found:
		ev.Op, ev.Value = OpSet, row.Value
	}
	return ev
}

// dormantAfter is how many checks in a row that find no read of this Store
// since the one before, and nobody watching, put the poller to sleep.
const dormantAfter = 20

// reads returns how many Lookups this Store has answered.
func (s *Store) reads() uint64 { return s.counters.hits.load() + s.counters.misses.Load() }

// resume ends the poller's sleep: it checks for others' writes, then lets
// reads go on and wakes the poller. Concurrent callers wait for the first.
// The check runs inside s.using, which it enters before servedOrder (order.go),
// as a write does (see applyForeign); once Close has begun it does not
// run.
func (s *Store) resume() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.state.Load()&stateDormant == 0 {
		return
	}
	if p := s.poller; p != nil {
		s.using(func() {
			if ch, err := p.Poll(s.ctx); err == nil && ch.Foreign {
				s.applyForeign(ch)
			}
		})
	}
	s.state.And(^uint32(stateDormant))
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
