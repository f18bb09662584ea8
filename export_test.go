package opstate

import "time"

// Batches returns how many transactions the committer ran and how many writes
// they held.
func (s *Store) Batches() (batches, writes uint64) {
	return s.committer.batches.Load(), s.committer.writes.Load()
}

// Checkpoints returns how many complete checkpoints the background
// checkpointer ran, and the longest any checkpoint held writes off.
func (s *Store) Checkpoints() (complete uint64, heldMax time.Duration) {
	c, ok := s.be.(interface {
		Checkpoints() (uint64, time.Duration)
	})
	if !ok {
		return 0, 0
	}
	return c.Checkpoints()
}

// SetAfterApply sets a function the committer runs between each commit and
// the cache update that follows it. Set it before writing.
func (s *Store) SetAfterApply(f func()) { s.committer.afterApply = f }

// Expiry is expiry, for tests of its arithmetic at the edges.
var Expiry = expiry

// Queued returns how many writes wait in the committer's queue for a leader
// to commit them.
func (s *Store) Queued() int {
	s.committer.mu.Lock()
	defer s.committer.mu.Unlock()
	return len(s.committer.queue)
}

// StripedCounter is the counter behind Stats.Hits, for its test and
// benchmark.
type StripedCounter struct{ c striped }

// Add and Load are the counter's add and load.
func (s *StripedCounter) Add()         { s.c.add() }
func (s *StripedCounter) Load() uint64 { return s.c.load() }

// StripesUsed returns how many of the counter's stripes are not zero.
func (s *StripedCounter) StripesUsed() int {
	n := 0
	for i := range s.c.stripes {
		if s.c.stripes[i].n.Load() != 0 {
			n++
		}
	}
	return n
}

// Dormant reports whether the poller of others' writes sleeps.
func (s *Store) Dormant() bool { return s.state.Load()&stateDormant != 0 }

// SetBeforeDormant sets a function the poller runs once it has decided to
// sleep, before it does; nil removes it.
func (s *Store) SetBeforeDormant(f func()) {
	if f == nil {
		s.beforeDormant.Store(nil)
		return
	}
	s.beforeDormant.Store(&f)
}

// HoldResume makes every end of the poller's sleep (resume) wait until
// release is called.
func (s *Store) HoldResume() (release func()) {
	s.syncMu.Lock()
	return s.syncMu.Unlock
}

// HoldClose makes Close, once it has waited for the operations in
// progress, wait until release is called before it empties the cache and
// closes the database.
func (s *Store) HoldClose() (release func()) {
	s.wg.Add(1)
	return s.wg.Done
}

// Closing reports whether Close has begun.
func (s *Store) Closing() bool { return s.isClosed() }

// NoteDamage records err as the Store's first sign of damage if it is one,
// as a failed write does.
func (s *Store) NoteDamage(err error) { s.noteDamage(err) }

// WatchBatch is how many events a watcher takes from its topic at once,
// and so holds, taken and not yet sent, while its consumer does not read.
const WatchBatch = batchSize

// HistoryPruneBatch is how many changes one transaction of the sweeper's
// pruning of the history deletes at most.
const HistoryPruneBatch = historyPruneBatch

// SetFdatasyncSwitch replaces modernc.org/sqlite's fdatasync switch, which
// Open and OpenDB call, with f, until the returned function restores it.
func SetFdatasyncSwitch(f func(on bool) (prev bool, err error)) (restore func()) {
	old := setFdatasync
	setFdatasync = f
	return func() { setFdatasync = old }
}
