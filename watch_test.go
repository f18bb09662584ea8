package opstate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestWatchEvents checks, operation by operation, the events a watcher of
// one namespace receives: exactly those documented for each of this
// Store's writes (OpSet with the value, OpDelete, OpExpire for a sweep,
// OpReset for DeleteNamespace), for another Store's, for plain SQL's (a
// rename being the delete of the old key and the set of the new) and for
// another process's; none for a conditional write whose condition failed,
// for a delete of nothing, for a write to another namespace, or for a
// write to another table of the file. After each operation the same
// writer sets a marker key: the events before the marker's are the
// operation's, and for a foreign writer the marker must arrive within
// SyncInterval (plus syncSlack).
func TestWatchEvents(t *testing.T) {
	path := dbPath(t)
	clk := newClock()
	other := mustOpen(t, path, opstate.Options{SyncInterval: -1, SweepInterval: -1, Clock: clk.Now})
	db := sqlDB(t, path)
	// Created before s opens the file: a schema change is a Reset.
	if _, err := db.Exec(`CREATE TABLE app (id INTEGER PRIMARY KEY, note TEXT)`); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync, SweepInterval: -1, Clock: clk.Now})

	set := func(st *opstate.Store, k, v string) func(string) error {
		return func(ns string) error { return st.Set(ns, k, v) }
	}
	keys := func(st *opstate.Store, n int) func(string) error {
		return func(ns string) error {
			for i := range n {
				if err := st.Set(ns, fmt.Sprint("k", i), "v"); err != nil {
					return err
				}
			}
			return nil
		}
	}
	expired := func(ns string) error {
		if err := s.SetWithTTL(ns, "k", "old", time.Second); err != nil {
			return err
		}
		clk.Advance(2 * time.Second)
		return nil
	}
	// cond runs a conditional write and checks what it reports.
	cond := func(want bool, f func(ns string) (bool, error)) func(string) error {
		return func(ns string) error {
			got, err := f(ns)
			if err == nil && got != want {
				err = fmt.Errorf("reported %v; want %v", got, want)
			}
			return err
		}
	}
	exec := func(q string) func(string) error {
		return func(ns string) error {
			_, err := db.Exec(q, ns)
			return err
		}
	}
	do := func(fs ...func(string) error) func(string) error {
		return func(ns string) error {
			for _, f := range fs {
				if err := f(ns); err != nil {
					return err
				}
			}
			return nil
		}
	}
	process := func(steps string) func(string) error {
		return func(ns string) error {
			out, err := childCommand(t, "watch-writer", watchChildDB+"="+path, watchChildNS+"="+ns, watchChildSteps+"="+steps).CombinedOutput()
			if err != nil {
				return fmt.Errorf("child: %v\n%s", err, out)
			}
			return nil
		}
	}
	const stamp = `'2026-03-07T10:00:00.000Z'`
	ev := func(op opstate.Op, key, value string) opstate.Event {
		return opstate.Event{Key: key, Op: op, Value: value}
	}

	tests := []struct {
		name  string
		setup func(ns string) error // by s, before Watch: no event
		op    func(ns string) error
		// by writes the marker: "own" (s), "store" (other), "sql", or
		// "process", the op's child, which writes it itself.
		by string
		// settle: the op's events come first, then the marker, with none
		// before it. For an op whose events may take the marker in (a
		// namespace-wide foreign change, or a log too long to read).
		settle bool
		want   []opstate.Event // Namespace left out: the case's
	}{
		{name: "Set", op: set(s, "k", "v"), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "Set of the empty value", op: set(s, "k", ""), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "")}},
		{name: "SetWithTTL", op: func(ns string) error { return s.SetWithTTL(ns, "k", "v", time.Hour) }, by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "SetIfAbsent stored", op: cond(true, func(ns string) (bool, error) { return s.SetIfAbsent(ns, "k", "v") }), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "SetIfAbsent over an expired row", setup: expired,
			op: cond(true, func(ns string) (bool, error) { return s.SetIfAbsent(ns, "k", "v") }), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "SetIfAbsentWithTTL stored", op: cond(true, func(ns string) (bool, error) { return s.SetIfAbsentWithTTL(ns, "k", "v", time.Hour) }), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "SetIfAbsent of a present key", setup: set(s, "k", "old"),
			op: cond(false, func(ns string) (bool, error) { return s.SetIfAbsent(ns, "k", "v") }), by: "own"},
		{name: "CompareAndSwap swapped", setup: set(s, "k", "old"),
			op: cond(true, func(ns string) (bool, error) { return s.CompareAndSwap(ns, "k", "old", "new") }), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "new")}},
		{name: "CompareAndSwapWithTTL swapped", setup: set(s, "k", "old"),
			op: cond(true, func(ns string) (bool, error) { return s.CompareAndSwapWithTTL(ns, "k", "old", "new", time.Hour) }), by: "own",
			want: []opstate.Event{ev(opstate.OpSet, "k", "new")}},
		{name: "CompareAndSwap of another value", setup: set(s, "k", "old"),
			op: cond(false, func(ns string) (bool, error) { return s.CompareAndSwap(ns, "k", "other", "new") }), by: "own"},
		{name: "CompareAndSwap of a missing key",
			op: cond(false, func(ns string) (bool, error) { return s.CompareAndSwap(ns, "k", "", "new") }), by: "own"},
		{name: "CompareAndSwap of an expired key", setup: expired,
			op: cond(false, func(ns string) (bool, error) { return s.CompareAndSwap(ns, "k", "old", "new") }), by: "own"},
		{name: "CompareAndDelete deleted", setup: set(s, "k", "old"),
			op: cond(true, func(ns string) (bool, error) { return s.CompareAndDelete(ns, "k", "old") }), by: "own",
			want: []opstate.Event{ev(opstate.OpDelete, "k", "")}},
		{name: "CompareAndDelete of another value", setup: set(s, "k", "old"),
			op: cond(false, func(ns string) (bool, error) { return s.CompareAndDelete(ns, "k", "other") }), by: "own"},
		{name: "Delete of a present key", setup: set(s, "k", "old"),
			op: func(ns string) error { return s.Delete(ns, "k") }, by: "own",
			want: []opstate.Event{ev(opstate.OpDelete, "k", "")}},
		{name: "Delete of a missing key", op: func(ns string) error { return s.Delete(ns, "k") }, by: "own"},
		{name: "DeleteNamespace", setup: keys(s, 3),
			op: func(ns string) error { return s.DeleteNamespace(ns) }, by: "own",
			want: []opstate.Event{{Op: opstate.OpReset}}},
		{name: "DeleteExpired",
			setup: func(ns string) error {
				for _, k := range []string{"a", "b"} {
					if err := s.SetWithTTL(ns, k, "v", time.Second); err != nil {
						return err
					}
				}
				if err := s.SetWithTTL(ns, "live", "v", time.Hour); err != nil {
					return err
				}
				clk.Advance(2 * time.Second)
				return nil
			},
			op: func(ns string) error {
				n, err := s.DeleteExpired(context.Background())
				if err == nil && n < 2 {
					err = fmt.Errorf("DeleteExpired = %d; want at least 2", n)
				}
				return err
			}, by: "own",
			want: []opstate.Event{ev(opstate.OpExpire, "a", ""), ev(opstate.OpExpire, "b", "")}},
		{name: "writes to other namespaces",
			setup: func(ns string) error { return s.Set(ns+"x", "k", "v") },
			op: do(
				func(ns string) error { return s.Set(ns+"x", "k", "v2") },
				func(ns string) error { return s.Set("x"+ns, "k", "v") },
				func(ns string) error { return s.SetWithTTL(ns+"x", "t", "v", time.Second) },
				func(ns string) error {
					clk.Advance(2 * time.Second)
					_, err := s.DeleteExpired(context.Background())
					return err
				},
				func(ns string) error { return s.DeleteNamespace(ns + "x") },
				func(ns string) error { return other.Set(ns+"x", "k", "v") },
				func(ns string) error { return other.DeleteNamespace(ns + "x") },
				exec(`INSERT INTO operational_state VALUES (?1 || '_', 'k', 'v', `+stamp+`, NULL)`),
			), by: "sql"},
		{name: "writes to another table of the file",
			op: do(
				exec(`INSERT INTO app (note) VALUES (?1)`),
				exec(`UPDATE app SET note = ?1 || '!'`),
				exec(`DELETE FROM app WHERE note <> ?1`),
			), by: "sql"},

		{name: "store: Set", op: set(other, "k", "v"), by: "store",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "store: SetWithTTL", op: func(ns string) error { return other.SetWithTTL(ns, "k", "v", time.Hour) }, by: "store",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "store: Delete", setup: set(s, "k", "old"), op: func(ns string) error { return other.Delete(ns, "k") }, by: "store",
			want: []opstate.Event{ev(opstate.OpDelete, "k", "")}},
		{name: "store: Delete of a missing key", op: func(ns string) error { return other.Delete(ns, "k") }, by: "store"},
		{name: "store: SetIfAbsent of a present key", setup: set(s, "k", "old"),
			op: cond(false, func(ns string) (bool, error) { return other.SetIfAbsent(ns, "k", "v") }), by: "store"},
		{name: "store: CompareAndSwap swapped", setup: set(s, "k", "old"),
			op: cond(true, func(ns string) (bool, error) { return other.CompareAndSwap(ns, "k", "old", "new") }), by: "store",
			want: []opstate.Event{ev(opstate.OpSet, "k", "new")}},
		{name: "store: CompareAndSwap of another value", setup: set(s, "k", "old"),
			op: cond(false, func(ns string) (bool, error) { return other.CompareAndSwap(ns, "k", "other", "new") }), by: "store"},
		{name: "store: CompareAndDelete deleted", setup: set(s, "k", "old"),
			op: cond(true, func(ns string) (bool, error) { return other.CompareAndDelete(ns, "k", "old") }), by: "store",
			want: []opstate.Event{ev(opstate.OpDelete, "k", "")}},
		// Another connection's DeleteNamespace is, in the change log, the
		// delete of each of its keys; of many keys, a namespace-wide change.
		{name: "store: DeleteNamespace of a few keys", setup: keys(s, 3),
			op: func(ns string) error { return other.DeleteNamespace(ns) }, by: "store",
			want: []opstate.Event{ev(opstate.OpDelete, "k0", ""), ev(opstate.OpDelete, "k1", ""), ev(opstate.OpDelete, "k2", "")}},
		{name: "store: DeleteNamespace of many keys", setup: keys(s, 100),
			op: func(ns string) error { return other.DeleteNamespace(ns) }, by: "store", settle: true,
			want: []opstate.Event{{Op: opstate.OpReset}}},

		{name: "sql: insert", op: exec(`INSERT INTO operational_state VALUES (?1, 'k', 'v', ` + stamp + `, NULL)`), by: "sql",
			want: []opstate.Event{ev(opstate.OpSet, "k", "v")}},
		{name: "sql: update", setup: set(s, "k", "old"),
			op: exec(`UPDATE operational_state SET value = 'new' WHERE namespace = ?1 AND key = 'k'`), by: "sql",
			want: []opstate.Event{ev(opstate.OpSet, "k", "new")}},
		{name: "sql: delete", setup: set(s, "k", "old"),
			op: exec(`DELETE FROM operational_state WHERE namespace = ?1 AND key = 'k'`), by: "sql",
			want: []opstate.Event{ev(opstate.OpDelete, "k", "")}},
		{name: "sql: delete of nothing",
			op: exec(`DELETE FROM operational_state WHERE namespace = ?1 AND key = 'k'`), by: "sql"},
		{name: "sql: rename", setup: set(s, "a", "v"),
			op: exec(`UPDATE operational_state SET key = 'b' WHERE namespace = ?1 AND key = 'a'`), by: "sql",
			want: []opstate.Event{ev(opstate.OpDelete, "a", ""), ev(opstate.OpSet, "b", "v")}},
		{name: "sql: move to another namespace", setup: set(s, "a", "v"),
			op: exec(`UPDATE operational_state SET namespace = namespace || 'x' WHERE namespace = ?1 AND key = 'a'`), by: "sql",
			want: []opstate.Event{ev(opstate.OpDelete, "a", "")}},
		{name: "sql: expire", setup: set(s, "k", "v"),
			op: exec(`UPDATE operational_state SET expires_at = '2000-01-01T00:00:00.000Z' WHERE namespace = ?1 AND key = 'k'`), by: "sql",
			want: []opstate.Event{ev(opstate.OpExpire, "k", "")}},
		// More rows of the change log than a check reads: it cannot say
		// what changed.
		{name: "sql: more changes than a check reads",
			op: exec(`WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 17000)
				INSERT INTO operational_state SELECT ?1, 'k' || x, 'v', ` + stamp + `, NULL FROM n`), by: "sql", settle: true,
			want: []opstate.Event{{Op: opstate.OpReset}}},
		{name: "process", setup: set(s, "d", "old"),
			op: process("set k v;delete d;delete missing;set " + marker + " m"), by: "process",
			want: []opstate.Event{ev(opstate.OpDelete, "d", ""), ev(opstate.OpSet, "k", "v")}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := fmt.Sprint("case", i)
			if tc.setup != nil {
				if err := tc.setup(ns); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			ch := watch(t, s, ns)
			if err := tc.op(ns); err != nil {
				t.Fatalf("op: %v", err)
			}
			written := time.Now()
			want := slices.Clone(tc.want)
			for i := range want {
				want[i].Namespace = ns
			}
			var got []opstate.Event
			if tc.settle {
				// Not timed: the many changes take a check a while to
				// read; the marker after them is.
				for range want {
					got = append(got, recv(t, ch, eventBound))
				}
			}
			bound := eventBound
			switch tc.by {
			case "own":
				mustSet(t, s, ns, marker, "m")
			case "store":
				mustSet(t, other, ns, marker, "m")
				bound = foreignBound
			case "sql":
				if _, err := db.Exec(`INSERT INTO operational_state VALUES (?, ?, 'm', `+stamp+`, NULL)`, ns, marker); err != nil {
					t.Fatal(err)
				}
				bound = foreignBound
			case "process":
				bound = foreignBound
			}
			before := untilSet(t, ch, marker, "m", bound)
			if tc.settle && len(before) > 0 {
				t.Errorf("events between the op's and the marker's: %s", eventsString(before))
			}
			got = append(got, before...)
			if !slices.Equal(byKey(got), byKey(want)) {
				t.Errorf("events = %s; want %s", eventsString(got), eventsString(want))
			}
			t.Logf("marker seen %v after the op", time.Since(written))
		})
	}
}

// TestWatchBackgroundSweep checks that the background sweeper's deletes of
// expired rows reach watchers as OpExpire, and that a Get on receiving one
// finds the key missing.
func TestWatchBackgroundSweep(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: watchSync, SweepInterval: watchSync, Clock: clk.Now})
	for _, k := range []string{"a", "b"} {
		if err := s.SetWithTTL("ns", k, "v", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetWithTTL("ns", "live", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	warm(t, s, "ns", "a", "b", "live")
	ch := watch(t, s, "ns")
	clk.Advance(2 * time.Second)
	got := map[string]bool{}
	for len(got) < 2 {
		ev := recv(t, ch, eventBound)
		if ev.Op != opstate.OpExpire || (ev.Key != "a" && ev.Key != "b") {
			t.Fatalf("event %s; want OpExpire of a and b", eventsString([]opstate.Event{ev}))
		}
		got[ev.Key] = true
		wantGet(t, s, "ns", ev.Key, "", false)
	}
	mustSet(t, s, "ns", marker, "m")
	if evs := untilSet(t, ch, marker, "m", eventBound); len(evs) > 0 {
		t.Errorf("events after the expiries: %s; want none", eventsString(evs))
	}
}
