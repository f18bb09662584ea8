package persist

import (
	"context"
	"fmt"
	"time"
)

// The write connection waits for other connections' locks in Go, not in
// SQLite's busy handler: its busy_timeout is 0, so that a statement that
// meets a lock fails at once with SQLITE_BUSY, and waitLock tries it again
// until the lock is free, BusyTimeout has passed, or the caller's context
// ends. The owner's context can thus end a wait at once (a Store's, at
// Close) without interrupting a statement: an interrupted COMMIT, or a
// statement the driver reports as interrupted because the context ended
// as it finished, would leave the caller unable to tell whether the write
// happened. A statement that failed with SQLITE_BUSY changed nothing (an
// autocommit statement rolls back, and BEGIN IMMEDIATE or COMMIT may be
// run again), so trying it again is safe, and ending the wait leaves
// nothing applied.
//
// The read connections keep SQLite's busy handler: in WAL mode a read
// waits for no writer, only for the brief recovery of the log by another
// connection, and cannot hold a Close up.

// lockDelays is the schedule of SQLite's own busy handler
// (sqliteDefaultBusyCallback): the wait before the first retries. From
// the last one on, every retry waits as long.
var lockDelays = [...]time.Duration{
	1 * time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	15 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond, 25 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
}

// lockDelay returns how long to wait before retry n (from 0) of a
// statement that has met a lock, having waited waited so far, under
// timeout; ok is false when the wait is over. The last wait is cut short
// so that the waits add up to timeout, as SQLite's do.
func lockDelay(n int, waited, timeout time.Duration) (d time.Duration, ok bool) {
	d = lockDelays[min(n, len(lockDelays)-1)]
	if waited+d > timeout {
		d = timeout - waited
	}
	if d <= 0 {
		return 0, false
	}
	return d, true
}

// waitLock runs try, and runs it again while it fails with SQLITE_BUSY,
// waiting between tries as SQLite's busy handler would, for timeout at
// most: it then returns try's busy error. When ctx ends first, it returns
// at once with an error that matches ctx.Err(); so it does, without
// running try, when ctx has ended already. Either way nothing of try was
// applied. try must run its statements with a context that does not end
// (see above).
func waitLock(ctx context.Context, timeout time.Duration, try func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := try()
	if !isBusy(err) {
		return err
	}
	start := time.Now()
	var t *time.Timer
	for n := 0; ; n++ {
		d, ok := lockDelay(n, time.Since(start), timeout)
		if !ok {
			return err
		}
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("opstate: stopped waiting for another connection's lock: %w", ctx.Err())
		case <-t.C:
		}
		if err = try(); !isBusy(err) {
			return err
		}
	}
}

// waitLock is waitLock under the DB's BusyTimeout.
func (db *DB) waitLock(ctx context.Context, try func() error) error {
	return waitLock(ctx, db.busyTimeout, try)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, with any extended
// code: a lock another connection holds.
func isBusy(err error) bool {
	if err == nil {
		return false // before errors.As, whose target would escape: no allocation on success
	}
	code, ok := sqliteCode(err)
	return ok && code&0xff == 5
}
