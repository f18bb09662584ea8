package opstate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// closeBusy is the BusyTimeout of the Stores of TestCloseDuringLockWait:
// long enough that a Close that waits it out cannot pass for prompt.
const closeBusy = 10 * time.Second

// closePrompt bounds how long Close may take there: "promptly" is about
// 100 ms plus the statement in progress; the bound is generous for loaded
// machines and still a tenth of closeBusy.
const closePrompt = time.Second

// lockWaitReach is how long TestCloseDuringLockWait gives a write to reach
// its wait for the lock before it calls Close. A write that had not would
// still fail with ErrClosed (refused at entry), and the test checks that
// the committer answered it (Stats.WriteErrors), so a slow start is seen.
const lockWaitReach = 300 * time.Millisecond

// closeHolders take the write lock of the file at path, each its own way,
// and return the function that releases it: a connection of this process
// (the same copy of SQLite, through database/sql), and another process.
var closeHolders = []struct {
	name string
	hold func(t *testing.T, path string) (release func())
}{
	{"connection", holdWriteLockUntil},
	{"process", holdWriteLockInChild},
}

// TestCloseDuringLockWait attacks the promise that Close returns promptly
// and that a write it cuts short did not happen. The write lock of the
// file is held by another connection, or another process, with nothing
// committed; a Store whose BusyTimeout is 10 s runs writes of every kind,
// which wait for the lock; Close is called while they wait. Close must
// return well within the busy timeout (closePrompt); each write must fail
// with an error matching ErrClosed, answered by the committer; and once
// the lock is released, the file, read by another connection, must hold
// exactly what it held before: none of the writes was applied, then or
// later. A sweep (DeleteExpired), which deletes a row that has expired,
// is one of the writes.
func TestCloseDuringLockWait(t *testing.T) {
	// committed: the write goes through the committer, which counts the
	// writes it answers.
	writes := []struct {
		name      string
		write     func(s *opstate.Store) error
		committed bool
	}{
		{"Set", func(s *opstate.Store) error { return s.Set("ns", "k", "new") }, true},
		{"Set of a new key", func(s *opstate.Store) error { return s.Set("ns", "fresh", "new") }, true},
		{"SetWithTTL", func(s *opstate.Store) error { return s.SetWithTTL("ns", "k", "new", time.Hour) }, true},
		{"Delete", func(s *opstate.Store) error { return s.Delete("ns", "k") }, true},
		{"DeleteNamespace", func(s *opstate.Store) error { return s.DeleteNamespace("ns") }, true},
		{"SetIfAbsent", func(s *opstate.Store) error { _, err := s.SetIfAbsent("ns", "fresh", "new"); return err }, true},
		{"CompareAndSwap", func(s *opstate.Store) error { _, err := s.CompareAndSwap("ns", "k", "old", "new"); return err }, true},
		{"CompareAndDelete", func(s *opstate.Store) error { _, err := s.CompareAndDelete("ns", "k", "old"); return err }, true},
		{"DeleteExpired", func(s *opstate.Store) error { _, err := s.DeleteExpired(context.Background()); return err }, false},
	}
	for _, h := range closeHolders {
		for _, w := range writes {
			t.Run(h.name+"/"+w.name, func(t *testing.T) {
				testCloseDuringLockWait(t, h.hold, 1, w.write, w.committed)
			})
		}
		// Several writers at once: the first waits alone, the others
		// queue behind it and form a batch of their own (a transaction
		// of several writes) once its wait ends.
		t.Run(h.name+"/batch", func(t *testing.T) {
			var n sync.Mutex
			i := 0
			testCloseDuringLockWait(t, h.hold, 8, func(s *opstate.Store) error {
				n.Lock()
				i++
				k := fmt.Sprint("b", i)
				n.Unlock()
				return s.Set("ns", k, "new")
			}, true)
		})
	}
}

// testCloseDuringLockWait runs writers goroutines calling write while
// hold holds the write lock, closes the Store, and checks what
// TestCloseDuringLockWait promises; committed says that the committer
// answers the writes.
func testCloseDuringLockWait(t *testing.T, hold func(*testing.T, string) func(), writers int, write func(*opstate.Store) error, committed bool) {
	path := dbPath(t)
	clk := newClock()
	s, err := opstate.Open(path, opstate.Options{BusyTimeout: closeBusy, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // after a failure; a second Close does nothing
	mustSet(t, s, "ns", "k", "old")
	mustSet(t, s, "other", "k", "kept")
	if err := s.SetWithTTL("ns", "expired", "x", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // for DeleteExpired to delete
	before := fileRows(t, path)
	release := hold(t, path)
	defer release()

	errs := make(chan error, writers)
	for range writers {
		go func() { errs <- write(s) }()
	}
	time.Sleep(lockWaitReach)
	select {
	case err := <-errs:
		t.Fatalf("a write returned %v before Close, under another connection's lock and a %v busy timeout", err, closeBusy)
	default:
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	took := time.Since(start)
	if took > closePrompt {
		t.Errorf("Close took %v while writes waited for another connection's lock; want it within %v (BusyTimeout %v)", took, closePrompt, closeBusy)
	}
	t.Logf("Close took %v", took)
	for range writers {
		select {
		case err := <-errs:
			if !errors.Is(err, opstate.ErrClosed) {
				t.Errorf("write cut short by Close = %v; want an error matching ErrClosed", err)
			}
		case <-time.After(2 * closeBusy):
			t.Fatalf("a write had not returned %v after Close", 2*closeBusy)
		}
	}
	if st := s.Stats(); committed && st.WriteErrors < uint64(writers) {
		t.Errorf("Stats().WriteErrors = %d; want %d: the writes did not reach the committer before Close", st.WriteErrors, writers)
	}

	release()
	if after := fileRows(t, path); !maps.Equal(after, before) {
		t.Errorf("after Close and the lock's release, the file holds %v; want %v, as before the writes", after, before)
	}
}

// fileRows returns every row of the file at path, "namespace/key" to
// value, read through a connection of its own after taking and releasing
// the write lock: no transaction is in progress anywhere when it reads.
func fileRows(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.QueryContext(ctx, "SELECT namespace, key, value FROM operational_state")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var ns, k, v string
		if err := rows.Scan(&ns, &k, &v); err != nil {
			t.Fatal(err)
		}
		m[ns+"/"+k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// holdWriteLockUntil takes the write lock of the file at path on a
// connection of its own (BEGIN IMMEDIATE), and returns the function that
// rolls back and closes it; a second call does nothing.
func holdWriteLockUntil(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		db.Close()
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
}

// holdWriteLockInChild starts a child process that takes the write lock of
// the file at path, and returns the function that makes it roll back and
// waits for it to exit.
func holdWriteLockInChild(t *testing.T, path string) (release func()) {
	t.Helper()
	c := startPipedChild(t, "lockholder-sql", lockChildEnv+"="+path)
	if !c.out.Scan() || c.out.Text() != "locked" {
		t.Fatalf("lockholder-sql child did not take the lock: %q, %v\n%s", c.out.Text(), c.out.Err(), c.stderr)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.in.(io.Closer).Close()
			for c.out.Scan() { // until it exits
			}
		})
	}
}
