package persist

import (
	"context"
	"time"
)

// After a checkpoint that stayed incomplete (another connection
// checkpointing, or reading frames of the log), the checkpointer tries
// again checkpointAgain later, twice as late after each such checkpoint up
// to checkpointRetry; after one that failed, checkpointRetry later.
const (
	checkpointAgain = 2 * time.Millisecond
	checkpointRetry = 100 * time.Millisecond
)

// maintainer is the DB's own goroutine that copies the write-ahead log
// into the database file whenever this DB's writes have grown it enough
// ([DB.CheckpointDue]), so that writes do not pay for checkpoints. It runs
// from Open, with [Options.Maintain], until Close.
type maintainer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startMaintainer starts db's checkpointer.
func (db *DB) startMaintainer() {
	ctx, cancel := context.WithCancel(context.Background())
	db.maint = &maintainer{cancel: cancel, done: make(chan struct{})}
	go db.checkpointer(ctx)
}

// stopMaintainer stops db's checkpointer, if it runs, and waits for it.
func (db *DB) stopMaintainer() {
	if db.maint == nil {
		return
	}
	db.maint.cancel()
	<-db.maint.done
}

// Checkpoints returns how many complete checkpoints db's checkpointer ran,
// and the longest any of them held writes off.
func (db *DB) Checkpoints() (complete uint64, heldMax time.Duration) {
	return db.checkpoints.Load(), time.Duration(db.heldMax.Load())
}

// checkpointer runs Checkpoint whenever one is due, until ctx ends.
func (db *DB) checkpointer(ctx context.Context) {
	defer close(db.maint.done)
	again := checkpointAgain
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.CheckpointDue():
		}
		r, err := db.Checkpoint(ctx)
		if int64(r.Held) > db.heldMax.Load() {
			db.heldMax.Store(int64(r.Held)) // only this goroutine stores
		}
		wait := again
		switch {
		case r.Complete:
			db.checkpoints.Add(1)
			again = checkpointAgain
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			db.warn("opstate: checkpoint failed", "err", err)
			wait = checkpointRetry
		default:
			again = min(2*again, checkpointRetry)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// warn reports msg to the DB's Logger; a Logger that panics is recovered
// from, since nobody could catch it.
func (db *DB) warn(msg string, args ...any) {
	defer func() { recover() }()
	db.logger.Warn(msg, args...)
}
