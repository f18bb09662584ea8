package pgstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// closeBusy is the BusyTimeout (lock_timeout) of the Stores of
// TestCloseDuringRowLock: a Close that waited it out could not pass for
// prompt.
const closeBusy = 10 * time.Second

// closePrompt bounds how long Close may take there: about 100 ms plus the
// statement in progress is the promise; the bound is generous for a
// loaded machine and still a tenth of closeBusy.
const closePrompt = time.Second

// TestCloseDuringRowLock attacks the promise that Close returns promptly
// and that a write it cuts short did not happen. Another session holds,
// in an open transaction, the row locks the Store's writes need: ns/k
// locked FOR UPDATE, and ns/fresh inserted and not committed. A Store
// whose lock_timeout is 10 s runs writes of every kind, which wait on the
// server for those locks (seen in pg_stat_activity), or queue behind one
// that does; Close is called while they wait. Close must return well within the busy timeout;
// each write must fail with an error matching ErrClosed; and after the
// other session rolls back and every backend of the Store has ended (a
// backend that kept waiting would run the write then, its client gone),
// the table must hold exactly what it held before.
func TestCloseDuringRowLock(t *testing.T) {
	writes := []struct {
		name    string
		writers int
		write   func(s *opstate.Store, i int) error
	}{
		{"Set", 1, func(s *opstate.Store, _ int) error { return s.Set("ns", "k", "new") }},
		{"Set of a key inserted elsewhere", 1, func(s *opstate.Store, _ int) error { return s.Set("ns", "fresh", "new") }},
		{"SetWithTTL", 1, func(s *opstate.Store, _ int) error { return s.SetWithTTL("ns", "k", "new", time.Hour) }},
		{"Delete", 1, func(s *opstate.Store, _ int) error { return s.Delete("ns", "k") }},
		{"DeleteNamespace", 1, func(s *opstate.Store, _ int) error { return s.DeleteNamespace("ns") }},
		{"SetIfAbsent", 1, func(s *opstate.Store, _ int) error { _, err := s.SetIfAbsent("ns", "fresh", "new"); return err }},
		{"CompareAndSwap", 1, func(s *opstate.Store, _ int) error { _, err := s.CompareAndSwap("ns", "k", "old", "new"); return err }},
		{"CompareAndDelete", 1, func(s *opstate.Store, _ int) error { _, err := s.CompareAndDelete("ns", "k", "old"); return err }},
		// The first waits alone; the others, started once it waits,
		// queue behind it and form a batch of their own, with keys
		// nobody locks, which Close ends before it begins.
		{"batch", 8, func(s *opstate.Store, i int) error {
			if i == 0 {
				return s.Set("ns", "k", "new")
			}
			return s.Set("ns", fmt.Sprint("b", i), "new")
		}},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			testCloseDuringRowLock(t, w.writers, w.write)
		})
	}
}

func testCloseDuringRowLock(t *testing.T, writers int, write func(*opstate.Store, int) error) {
	dsn := pgtest.Schema(t)
	b := make([]byte, 6)
	rand.Read(b)
	app := "opstate_close_" + hex.EncodeToString(b) // names the Store's sessions
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstate.Open(ctx, pgtest.WithParam(dsn, "application_name", app), opstate.Options{BusyTimeout: closeBusy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // after a failure; a second Close does nothing
	set(t, s, "ns", "k", "old")
	set(t, s, "other", "k", "kept")
	raw := rawConn(t, dsn)
	before := tableRows(t, raw)

	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE namespace = 'ns' AND key = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO operational_state (namespace, key, value, updated_at) VALUES ('ns', 'fresh', 'tx', now())`); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, writers)
	go func() { errs <- write(s, 0) }()
	// Until the Store's session waits for the lock.
	watch := rawConn(t, dsn)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n := sessions(t, watch, app, "AND wait_event_type = 'Lock'"); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write of the Store waited for the lock within 10s")
		}
	}
	if writers > 1 {
		for i := 1; i < writers; i++ {
			go func() { errs <- write(s, i) }()
		}
		time.Sleep(100 * time.Millisecond) // to queue behind the first
	}

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	took := time.Since(start)
	if took > closePrompt {
		t.Errorf("Close took %v while a write waited for another session's row lock; want it within %v (BusyTimeout %v)", took, closePrompt, closeBusy)
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

	// The other session gives its locks up; a backend of the Store still
	// waiting for them would now run its write. Wait for every one to end.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wantUnchanged(t, watch, raw, app, before)
}

// sessions counts the server's sessions named app, with the condition
// cond (SQL that begins with AND) on pg_stat_activity.
// wantUnchanged waits, up to 10s, for every session of the closed Store
// named app to end (one still waiting for a lock just released would now
// run its write), then checks through raw that the table holds before.
func wantUnchanged(t *testing.T, watch, raw *pgx.Conn, app string, before map[string]string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); sessions(t, watch, app, "") > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("sessions of the closed Store still on the server 10s after the locks were released")
		}
	}
	if after := tableRows(t, raw); !maps.Equal(after, before) {
		t.Errorf("after Close and the other session's rollback, the table holds %v; want %v, as before the writes", after, before)
	}
}

func sessions(t *testing.T, c *pgx.Conn, app, cond string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 `+cond, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tableRows returns every row of operational_state, "namespace/key" to
// value.
func tableRows(t *testing.T, c *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT namespace || '/' || key, value FROM operational_state`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCloseDuringTableLock attacks the same promise for reads: another
// session holds operational_state locked (LOCK TABLE, as TRUNCATE or an
// ALTER TABLE in an open transaction do), so that a read the cache cannot
// answer waits on the server; Close must return well within the busy
// timeout, and the read fail with an error matching ErrClosed. A write
// waiting for the table lock is cut short as one waiting for a row lock.
func TestCloseDuringTableLock(t *testing.T) {
	reads := []struct {
		name string
		read func(s *opstate.Store) error
	}{
		{"Get", func(s *opstate.Store) error { _, err := s.Get("ns", "k"); return err }},
		{"List", func(s *opstate.Store) error { _, err := s.List("ns"); return err }},
		{"Namespaces", func(s *opstate.Store) error { _, err := s.Namespaces(); return err }},
		{"Set", func(s *opstate.Store) error { return s.Set("ns", "k", "new") }},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			dsn := pgtest.Schema(t)
			b := make([]byte, 6)
			rand.Read(b)
			app := "opstate_close_" + hex.EncodeToString(b)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := pgstate.Open(ctx, pgtest.WithParam(dsn, "application_name", app), opstate.Options{BusyTimeout: closeBusy, CacheBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			set(t, s, "ns", "k", "old")
			raw := rawConn(t, dsn)
			before := tableRows(t, raw)
			tx, err := raw.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if _, err := tx.Exec(ctx, `LOCK TABLE operational_state IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.read(s) }()
			watch := rawConn(t, dsn)
			for deadline := time.Now().Add(10 * time.Second); sessions(t, watch, app, "AND wait_event_type = 'Lock'") == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the call never waited for the table lock")
				}
			}
			start := time.Now()
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			took := time.Since(start)
			if took > closePrompt {
				t.Errorf("Close took %v while a %s waited for another session's table lock; want it within %v (BusyTimeout %v)", took, r.name, closePrompt, closeBusy)
			}
			t.Logf("Close took %v", took)
			select {
			case err := <-done:
				if !errors.Is(err, opstate.ErrClosed) {
					t.Errorf("%s cut short by Close = %v; want an error matching ErrClosed", r.name, err)
				}
			case <-time.After(2 * closeBusy):
				t.Fatalf("%s had not returned %v after Close", r.name, 2*closeBusy)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			wantUnchanged(t, watch, raw, app, before)
		})
	}
}
