package persist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// TestLockDelay checks the retry schedule against SQLite's own busy
// handler (sqliteDefaultBusyCallback): its delays, the totals it has
// waited before each retry, and the last wait cut short at the timeout.
func TestLockDelay(t *testing.T) {
	ms := time.Millisecond
	// SQLite's delays and totals, in milliseconds, from its source.
	delays := []int{1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100}
	totals := []int{0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228}
	waited := time.Duration(0)
	for n := range 16 {
		want := 100 * ms
		if n < len(delays) {
			want = time.Duration(delays[n]) * ms
			if total := time.Duration(totals[n]) * ms; waited != total {
				t.Errorf("before retry %d: waited %v; SQLite has waited %v", n, waited, total)
			}
		}
		d, ok := lockDelay(n, waited, time.Hour)
		if !ok || d != want {
			t.Errorf("lockDelay(%d, %v, 1h) = %v, %v; want %v, true", n, waited, d, ok, want)
		}
		waited += d
	}

	tests := []struct {
		n               int
		waited, timeout time.Duration
		want            time.Duration
		ok              bool
	}{
		{0, 0, ms, ms, true},               // a 1 ms timeout waits 1 ms
		{1, ms, ms, 0, false},              // and no more
		{1, ms, 2 * ms, ms, true},          // the last wait is cut short
		{2, 3 * ms, 3 * ms, 0, false},      // the waits add up to the timeout
		{3, 3 * ms, 10 * ms, 7 * ms, true}, // 10 ms would pass it
		{0, 0, 0, 0, false},                // no timeout: no wait
		{20, 5 * ms, 4 * ms, 0, false},     // already past it (a slow try)
		{11, 200 * ms, time.Hour, 100 * ms, true},
		{500, 10 * time.Second, 10*time.Second + 50*ms, 50 * ms, true},
	}
	for _, tt := range tests {
		d, ok := lockDelay(tt.n, tt.waited, tt.timeout)
		if d != tt.want || ok != tt.ok {
			t.Errorf("lockDelay(%d, %v, %v) = %v, %v; want %v, %v", tt.n, tt.waited, tt.timeout, d, ok, tt.want, tt.ok)
		}
	}
}

// busyError returns the error SQLite gives a connection whose
// busy_timeout is 0 for BEGIN IMMEDIATE while another connection holds
// the write lock of a new database file.
func busyError(t *testing.T) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.db")
	holder := lockFile(t, path)
	defer holder()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec("BEGIN IMMEDIATE")
	if !isBusy(err) {
		t.Fatalf("BEGIN IMMEDIATE under another connection's lock = %v; want SQLITE_BUSY", err)
	}
	return err
}

// lockFile takes the write lock of the database at path (created if
// missing) on a connection of its own, and returns the function that
// releases it.
func lockFile(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(context.Background())
	if err == nil {
		_, err = c.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	}
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			c.ExecContext(context.Background(), "ROLLBACK")
			c.Close()
			db.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestWaitLock runs waitLock on tries that meet SQLite's busy error a
// number of times, and checks when it tries again, gives up, or stops.
func TestWaitLock(t *testing.T) {
	busy := busyError(t)
	other := errors.New("not a lock")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		timeout   time.Duration
		busyTries int   // tries that meet the lock before it is free
		then      error // what the try after them returns
		wantTries int
		want      error // nil, busy, other or context.Canceled
	}{
		{"free", context.Background(), time.Second, 0, nil, 1, nil},
		{"freed", context.Background(), time.Second, 3, nil, 4, nil},
		{"other error at once", context.Background(), time.Second, 0, other, 1, other},
		{"other error later", context.Background(), time.Second, 2, other, 3, other},
		{"timeout", context.Background(), 20 * time.Millisecond, 1 << 30, nil, -1, busy},
		{"context ended before", canceled, time.Second, 0, nil, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			start := time.Now()
			err := waitLock(tt.ctx, tt.timeout, func() error {
				tries++
				if tries <= tt.busyTries {
					return busy
				}
				return tt.then
			})
			took := time.Since(start)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("waitLock = %v; want %v", err, tt.want)
			}
			if tt.wantTries >= 0 && tries != tt.wantTries {
				t.Errorf("waitLock tried %d times; want %d", tries, tt.wantTries)
			}
			if tt.want == busy {
				// 1, 2, 5 and 10 ms, then 2 ms cut short: 6 tries
				// when nothing is late; fewer on a slow machine.
				if tries < 2 || tries > 6 {
					t.Errorf("waitLock tried %d times in a %v timeout; want 2 to 6", tries, tt.timeout)
				}
				if took < tt.timeout {
					t.Errorf("waitLock gave up after %v; want it to wait the timeout, %v", took, tt.timeout)
				}
			}
		})
	}
}

// TestWaitLockCanceled ends the context of a waitLock that waits for a
// lock that is never freed, under a timeout of a minute: it returns at
// once with the context's error, which is not ErrBusy, and tries no more.
func TestWaitLockCanceled(t *testing.T) {
	busy := busyError(t)
	ctx, cancel := context.WithCancel(context.Background())
	tries := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- waitLock(ctx, time.Minute, func() error {
			n++
			select {
			case tries <- n:
			default:
			}
			return busy
		})
	}()
	for n := 0; n < 5; n = <-tries { // until it has waited a few times
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || errors.Is(withSentinel(err), ErrBusy) {
			t.Errorf("waitLock ended by its context = %v; want context.Canceled, not ErrBusy", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("waitLock returned %v after its context ended; want at once", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitLock still waiting 30s after its context ended")
	}
	select {
	case n := <-tries:
		t.Errorf("waitLock tried again (try %d) after its context ended", n)
	default:
	}
}

// TestLockWaitEndsWithContext runs each write of a DB whose BusyTimeout is
// a minute while another connection holds the write lock, and ends its
// context: it must return at once with the context's error, not ErrBusy,
// and, once the lock is released, the file must hold nothing of it. With
// a short BusyTimeout, the same writes fail with ErrBusy, as before.
func TestLockWaitEndsWithContext(t *testing.T) {
	put := func(k string) Write { return Write{Kind: Put, Namespace: "ns", Key: k, Value: "new"} }
	writes := []struct {
		name string
		run  func(ctx context.Context, db *DB) error
	}{
		{"Apply of one Put", func(ctx context.Context, db *DB) error {
			_, err := db.Apply(ctx, lockNow, []Write{put("k")})
			return err
		}},
		{"Apply of a batch", func(ctx context.Context, db *DB) error {
			_, err := db.Apply(ctx, lockNow, []Write{put("k"), put("fresh"), {Kind: Delete, Namespace: "ns", Key: "other"}})
			return err
		}},
		{"Apply of a conditional write", func(ctx context.Context, db *DB) error {
			_, err := db.Apply(ctx, lockNow, []Write{{Kind: Swap, Namespace: "ns", Key: "k", Old: "old", Value: "new"}})
			return err
		}},
		{"DeleteExpired", func(ctx context.Context, db *DB) error {
			_, err := db.DeleteExpired(ctx, lockNow+3600_000, 10)
			return err
		}},
		{"PruneChanges", func(ctx context.Context, db *DB) error { _, err := db.PruneChanges(ctx, 1, 100); return err }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			db := lockedDB(t, path, time.Minute)
			before := fileState(t, path)
			release := lockFile(t, path)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.run(ctx, db) }()
			time.Sleep(100 * time.Millisecond) // into the wait
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || errors.Is(err, ErrBusy) {
					t.Errorf("%s ended by its context = %v; want context.Canceled, not ErrBusy", w.name, err)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("%s returned %v after its context ended; want at once", w.name, d)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s still waiting 30s after its context ended", w.name)
			}
			release()
			if after := fileState(t, path); after != before {
				t.Errorf("after %s ended by its context, the file holds\n%s\nwant, as before,\n%s", w.name, after, before)
			}
			// The DB goes on: the same write now commits.
			if err := w.run(context.Background(), db); err != nil {
				t.Errorf("%s once the lock is free = %v", w.name, err)
			}

			// Under a short BusyTimeout, ErrBusy as before.
			path2 := filepath.Join(t.TempDir(), "state.db")
			db2 := lockedDB(t, path2, 30*time.Millisecond)
			lockFile(t, path2)
			start = time.Now()
			if err := w.run(context.Background(), db2); !errors.Is(err, ErrBusy) {
				t.Errorf("%s under a 30ms BusyTimeout = %v; want ErrBusy", w.name, err)
			}
			if d := time.Since(start); d < 30*time.Millisecond {
				t.Errorf("%s gave up after %v; want it to wait the BusyTimeout, 30ms", w.name, d)
			}
		})
	}
}

// lockNow is the time of TestLockWaitEndsWithContext's writes.
var lockNow = time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC).UnixMilli()

// lockedDB opens a DB at path under busy and writes the rows that
// TestLockWaitEndsWithContext's writes change: ns/k "old", ns/other, and
// a row that has expired, and a change log of several rows.
func lockedDB(t *testing.T, path string, busy time.Duration) *DB {
	t.Helper()
	db, err := Open(path, Options{BusyTimeout: busy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, err = db.Apply(context.Background(), lockNow, []Write{
		{Kind: Put, Namespace: "ns", Key: "k", Value: "old"},
		{Kind: Put, Namespace: "ns", Key: "other", Value: "o"},
		{Kind: Put, Namespace: "ns", Key: "expired", Value: "e", ExpiresAt: lockNow + 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fileState returns the rows of operational_state and the positions of
// the change log of the file at path, read on a connection of its own.
func fileState(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	err = db.QueryRow(`SELECT
		(SELECT group_concat(namespace || '/' || key || '=' || value, ' ') FROM (SELECT * FROM operational_state ORDER BY namespace, key)) || ' log:' ||
		(SELECT group_concat(seq, ',') FROM (SELECT seq FROM operational_state_changes ORDER BY seq))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplyErrorMeansNotApplied attacks the promise that an error from
// Apply means nothing was applied, when its context ends at any moment:
// before, during or just after the commit. Each batch puts its own keys,
// with a context cancelled after a random delay; every batch that
// returned nil must be in the file, and none that failed.
func TestApplyErrorMeansNotApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	const batches = 2000
	ok := make([]bool, batches)
	failed := 0
	for i := range batches {
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(time.Duration(rng.IntN(60))*time.Microsecond, cancel)
		var ws []Write
		for j := range 1 + i%3 { // batches of one write and of several
			ws = append(ws, Write{Kind: Put, Namespace: "ns", Key: fmt.Sprintf("%d-%d", i, j), Value: "v"})
		}
		_, err := db.Apply(ctx, lockNow, ws)
		stop.Stop()
		cancel()
		ok[i] = err == nil
		if err != nil {
			failed++
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Apply %d = %v; want nil or context.Canceled", i, err)
			}
		}
	}
	t.Logf("%d of %d batches ended by their context", failed, batches)
	for i := range batches {
		for j := range 1 + i%3 {
			_, found, err := db.Get(context.Background(), "ns", fmt.Sprintf("%d-%d", i, j))
			if err != nil {
				t.Fatal(err)
			}
			if found != ok[i] {
				t.Errorf("batch %d: Apply returned nil: %v, and its key %d is in the file: %v", i, ok[i], j, found)
			}
		}
	}
}
