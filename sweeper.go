package opstate

import (
	"context"
	"errors"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// sweepBatch is how many expired rows one transaction of a sweep deletes.
// Writes queued behind a sweep wait for at most one such batch.
const sweepBatch = 32

// sweepKey is the singleflight key shared by every sweep of a Store.
const sweepKey = "sweep"

// DeleteExpired deletes every row whose expiry has passed, from SQLite and
// from the cache, and returns how many rows it deleted. It deletes in
// batches of bounded size, each its own transaction, so writes never wait
// long behind it.
//
// Concurrent calls, and the background sweeper, share one run: a caller
// that arrives while a sweep is running waits for it and gets its count.
// The run itself belongs to the Store and continues until done or Close;
// ctx bounds only how long this caller waits, and when it ends first,
// DeleteExpired returns ctx's error.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed // before ctx: a closed Store says so first
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	s.wg.Add(1) // under inFlight, so Close cannot be waiting on wg yet
	s.inFlight.RUnlock()

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer s.wg.Done()
		n, err := s.sweepShared()
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// sweepShared runs a sweep, or joins the one in progress.
func (s *Store) sweepShared() (int64, error) {
	v, err, _ := s.sweeps.Do(sweepKey, func() (any, error) {
		return s.sweep(s.ctx)
	})
	n, _ := v.(int64)
	return n, err
}

// sweep deletes expired rows batch by batch until none is left or ctx ends.
func (s *Store) sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		if ctx.Err() != nil {
			return total, ErrClosed // ctx is the Store's: it ends only at Close
		}
		start, writes := time.Now(), s.committer.writes.Load()
		n, err := s.sweepBatch(ctx)
		total += int64(n)
		if err != nil {
			return total, wrapf(err, "delete expired")
		}
		if n < sweepBatch {
			if p, ok := s.be.(storage.Pruner); ok {
				if err := s.pruneChangeLog(ctx, p); err != nil {
					return total, err
				}
			}
			if h, ok := s.be.(storage.Historian); ok {
				return total, s.pruneHistory(ctx, h)
			}
			return total, nil
		}
		if s.committer.writes.Load() == writes {
			continue // nobody else is writing: go on at full speed
		}
		// Others are writing: leave the database to them for as long as
		// the batch took, so that the sweep takes at most about half of it
		// and their writes never queue behind batch after batch.
		select {
		case <-time.After(time.Since(start)):
		case <-ctx.Done():
		}
	}
}

// sweepBatch deletes up to sweepBatch expired rows in one statement, and
// drops their keys from the cache. The rows were expired, so invisible
// already: dropping them only frees memory, and a write of one of the keys
// that commits meanwhile loses nothing but its cached copy.
//
// It holds servedOrder (order.go) from the delete until the keys'
// OpExpire events are sent, as a batch of writes does.
func (s *Store) sweepBatch(ctx context.Context) (int, error) {
	var keys []storage.Key
	var err error
	if uerr := s.inOrder(func() {
		defer func() { s.expiredLocked(keys) }()
		if err = s.refuseDamaged(); err != nil {
			return
		}
		var now int64
		if now, err = s.now(); err != nil {
			return
		}
		keys, err = s.be.DeleteExpired(ctx, now, sweepBatch)
		if err != nil && ctx.Err() != nil {
			err = ErrClosed // ctx is the Store's: Close interrupted the statement
		}
		err = s.noteDamage(err)
	}); uerr != nil {
		return 0, uerr
	}
	return len(keys), err
}

// expiredLocked drops the keys a sweep deleted from the cache and sends
// their OpExpire events; called holding servedOrder (order.go).
func (s *Store) expiredLocked(keys []storage.Key) {
	for _, k := range keys {
		s.cache.Remove(k.Namespace, k.Key)
		if s.feed.watchedLocked(k.Namespace) {
			s.feed.sendLocked(Event{Namespace: k.Namespace, Key: k.Key, Op: OpExpire})
		}
	}
	s.counters.expired.Add(uint64(len(keys)))
}

// changeLogKeep is how many of the newest rows of the change log a sweep
// leaves: a Store on the file that has not read them yet (one that checks
// every SyncInterval reads far fewer between checks) can still tell what
// changed. One that falls further behind empties its cache instead.
const changeLogKeep = 65536

// pruneBatch is how many rows of the change log one transaction deletes.
const pruneBatch = 4096

// pruneChangeLog deletes, through p, the rows of the change log older than the newest
// changeLogKeep, batch by batch, until none is left or ctx ends.
func (s *Store) pruneChangeLog(ctx context.Context, p storage.Pruner) error {
	for ctx.Err() == nil {
		var n int
		var err error
		if uerr := s.using(func() {
			if err = s.refuseDamaged(); err == nil {
				n, err = p.PruneChanges(ctx, changeLogKeep, pruneBatch)
			}
		}); uerr != nil {
			return uerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ErrClosed
			}
			return wrapf(s.noteDamage(err), "prune change log")
		}
		if n < pruneBatch {
			return nil
		}
	}
	return ErrClosed
}

// historyPruneBatch is how many changes of the history one transaction
// deletes.
const historyPruneBatch = 1024

// pruneHistory deletes, through h, the changes of the history beyond their
// namespace's keep, and those of namespaces that keep none, batch by
// batch, until none is left or ctx ends; like a sweep, it leaves the
// database to others' writes between batches for as long as a batch
// took.
func (s *Store) pruneHistory(ctx context.Context, h storage.Historian) error {
	for ctx.Err() == nil {
		start, writes := time.Now(), s.committer.writes.Load()
		var n int
		var err error
		if uerr := s.using(func() {
			if err = s.refuseDamaged(); err == nil {
				n, err = h.PruneHistory(ctx, historyPruneBatch)
			}
		}); uerr != nil {
			return uerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ErrClosed
			}
			return wrapf(s.noteDamage(err), "prune history")
		}
		if n < historyPruneBatch {
			return nil
		}
		if s.committer.writes.Load() != writes {
			select {
			case <-time.After(time.Since(start)):
			case <-ctx.Done():
			}
		}
	}
	return ErrClosed
}

// sweepInBackground is the background sweeper: run every SweepInterval.
func (s *Store) sweepInBackground() {
	n, err := s.sweepShared()
	switch {
	case err != nil && !errors.Is(err, ErrClosed):
		s.log.Warn("opstate: background sweep failed", "deleted", n, "err", err)
	case n > 0:
		s.log.Debug("opstate: background sweep", "deleted", n)
	}
}
