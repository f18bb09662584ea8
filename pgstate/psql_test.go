package pgstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// rawConn connects behind the Store's back, as psql does.
func rawConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rawExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestHandEdits edits operational_state by hand, as an operator with psql
// would: an insert, an update, a rename, a delete and the delete of an
// expired row each reach the Store's cache and its watchers, as the
// events they are (the last as OpExpire).
func TestHandEdits(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{})
	raw := rawConn(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := s.Watch(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	next := func() opstate.Event {
		t.Helper()
		select {
		case ev := <-evs:
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return opstate.Event{}
	}
	steps := []struct {
		name, sql string
		key, want string // the key and the value Get serves after
		evs       []opstate.Event
	}{
		{"insert", `INSERT INTO operational_state VALUES ('ns', 'a', 'one', now(), NULL)`, "a", "one",
			[]opstate.Event{{Namespace: "ns", Key: "a", Op: opstate.OpSet, Value: "one"}}},
		{"update", `UPDATE operational_state SET value = 'two' WHERE key = 'a'`, "a", "two",
			[]opstate.Event{{Namespace: "ns", Key: "a", Op: opstate.OpSet, Value: "two"}}},
		{"rename", `UPDATE operational_state SET key = 'b' WHERE key = 'a'`, "a", "",
			[]opstate.Event{{Namespace: "ns", Key: "a", Op: opstate.OpDelete}, {Namespace: "ns", Key: "b", Op: opstate.OpSet, Value: "two"}}},
		{"delete", `DELETE FROM operational_state WHERE key = 'b'`, "b", "",
			[]opstate.Event{{Namespace: "ns", Key: "b", Op: opstate.OpDelete}}},
		{"insert-expired", `INSERT INTO operational_state VALUES ('ns', 'c', 'dead', now(), now() - interval '1 second')`, "c", "",
			[]opstate.Event{{Namespace: "ns", Key: "c", Op: opstate.OpExpire}}},
		{"sweep-by-hand", `DELETE FROM operational_state WHERE expires_at <= now()`, "c", "",
			[]opstate.Event{{Namespace: "ns", Key: "c", Op: opstate.OpExpire}}},
	}
	for _, st := range steps {
		get(t, s, "ns", st.key) // cached before the edit
		rawExec(t, raw, st.sql)
		for _, want := range st.evs {
			if got := next(); got != want {
				t.Errorf("%s: event %+v; want %+v", st.name, got, want)
			}
		}
		if got := get(t, s, "ns", st.key); got != st.want {
			t.Errorf("%s: Get(%s) = %q; want %q", st.name, st.key, got, st.want)
		}
	}
}

// TestBusy holds a key's row lock in a transaction behind the Store's
// back: a write of the key fails with ErrBusy after BusyTimeout and is
// not served, while writes of other keys go on.
func TestBusy(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{BusyTimeout: 200 * time.Millisecond})
	set(t, s, "ns", "k", "old")
	raw := rawConn(t, dsn)
	tx, err := raw.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(context.Background(), `SELECT 1 FROM operational_state WHERE key = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Set("ns", "k", "new")
	if !errors.Is(err, opstate.ErrBusy) {
		t.Fatalf("Set of a locked row = %v; want ErrBusy", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("Set failed after %v; want after BusyTimeout (200ms)", d)
	}
	if got := get(t, s, "ns", "k"); got != "old" {
		t.Errorf("Get after the failed Set = %q; want old", got)
	}
	set(t, s, "ns", "other", "v")
	tx.Rollback(context.Background())
	set(t, s, "ns", "k", "new")
}
