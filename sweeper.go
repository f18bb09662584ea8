package opstate

import (
	"context"
	"errors"
	"time"

	"github.com/d8da9184/opstate/persist"
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
	if s.closed.Load() {
		return 0, ErrClosed // before ctx: a closed Store says so first
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	s.wg.Add(1) // under life, so Close cannot be waiting on wg yet
	s.life.RUnlock()

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
		start, others := time.Now(), s.w.others.Load()
		w, err := s.writeResult(persist.Write{Kind: persist.DeleteExpired, Limit: sweepBatch}, "delete expired")
		if err != nil {
			return total, err
		}
		total += int64(len(w.Swept))
		if len(w.Swept) < sweepBatch {
			return total, nil
		}
		if s.w.others.Load() == others {
			continue // nobody else is writing: go on at full speed
		}
		// Others are writing: leave the writer to them for as long as the
		// batch took, so that the sweep takes at most about half of it and
		// their writes never queue behind batch after batch.
		select {
		case <-time.After(time.Since(start)):
		case <-ctx.Done():
		}
	}
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
