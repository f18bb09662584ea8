package opstate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// watchSync is the SyncInterval of the Stores of these tests, none of
// which is about its default: foreign writes reach watchers within a few
// milliseconds.
const watchSync = 5 * time.Millisecond

// foreignBound is how soon a watcher must receive an event for a write
// committed by anyone else.
const foreignBound = watchSync + syncSlack

// eventBound is how long a test waits for an event, a closed channel or a
// call that must come before it concludes that it never will: a hang, a
// deadlock, a lost event. Far above any delay a working Store shows.
const eventBound = 10 * time.Second

// watch opens a watch of ns on s that ends with the test.
func watch(t testing.TB, s *opstate.Store, ns string) <-chan opstate.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Watch(ctx, ns)
	if err != nil {
		t.Fatalf("Watch(%q) = %v", ns, err)
	}
	return ch
}

// recv returns the next event of ch; it fails the test if ch is closed or
// nothing comes within d.
func recv(t testing.TB, ch <-chan opstate.Event, d time.Duration) opstate.Event {
	t.Helper()
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed; want an event")
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event within %v", d)
	}
	panic("unreachable")
}

// untilSet returns the events ch sends before the OpSet of key to value,
// which must come within d.
func untilSet(t testing.TB, ch <-chan opstate.Event, key, value string, d time.Duration) []opstate.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	var evs []opstate.Event
	for {
		ev := recv(t, ch, time.Until(deadline))
		if ev.Op == opstate.OpSet && ev.Key == key && ev.Value == value {
			return evs
		}
		evs = append(evs, ev)
	}
}

// waitClosed reads ch until it is closed, which must happen within d, and
// returns how many events it read.
func waitClosed(t testing.TB, ch <-chan opstate.Event, d time.Duration) int {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
		case <-timer.C:
			t.Fatalf("watch channel still open %v later (%d events read)", d, n)
		}
	}
}

// deliverers returns how many goroutines started by Store.Watch are
// running.
func deliverers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by github.com/d8da9184/opstate.(*Store).Watch")
}

// wantDeliverers waits up to eventBound for the number of Watch's
// goroutines to come down to want.
func wantDeliverers(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(eventBound)
	for {
		n := deliverers()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of Watch running %v later; want %d", n, eventBound, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// within runs f and fails the test if it has not returned after d: a
// deadlock, which it reports with every goroutine's stack.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s has not returned after %v:\n%s", what, d, buf)
	}
}

// eventsString renders evs for a message.
func eventsString(evs []opstate.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s/%q", ev.Op, ev.Namespace, ev.Key)
		if ev.Op == opstate.OpSet {
			fmt.Fprintf(&b, "=%q", ev.Value)
		}
	}
	return "[" + b.String() + "]"
}

// byKey sorts evs by key, keeping the order of each key's events: what a
// watcher promises is the order per key, not across keys.
func byKey(evs []opstate.Event) []opstate.Event {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b opstate.Event) int { return strings.Compare(a.Key, b.Key) })
	return evs
}

// The child role "watch-writer" writes to the namespace watchChildNS of the
// file watchChildDB: the steps of watchChildSteps ("set k v;delete k"),
// then, if watchChildRandom is "seed,n", n random writes (randomWrites).
const (
	watchChildDB     = "OPSTATE_WATCH_DB"
	watchChildNS     = "OPSTATE_WATCH_NS"
	watchChildSteps  = "OPSTATE_WATCH_STEPS"
	watchChildRandom = "OPSTATE_WATCH_RANDOM"
)

func init() { childRoles["watch-writer"] = watchWriter }

func watchWriter() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := opstate.Open(os.Getenv(watchChildDB), opstate.Options{SweepInterval: -1})
	if err != nil {
		return fail(err)
	}
	ns := os.Getenv(watchChildNS)
	if steps := os.Getenv(watchChildSteps); steps != "" {
		for _, step := range strings.Split(steps, ";") {
			f := strings.Fields(step)
			switch {
			case len(f) == 3 && f[0] == "set":
				err = s.Set(ns, f[1], f[2])
			case len(f) == 2 && f[0] == "delete":
				err = s.Delete(ns, f[1])
			default:
				err = fmt.Errorf("bad step %q", step)
			}
			if err != nil {
				s.Close()
				return fail(err)
			}
		}
	}
	if r := os.Getenv(watchChildRandom); r != "" {
		var seed uint64
		var n int
		if _, err := fmt.Sscanf(r, "%d,%d", &seed, &n); err != nil {
			s.Close()
			return fail(fmt.Errorf("%s=%q: %v", watchChildRandom, r, err))
		}
		if err := randomWrites(s, ns, rand.New(rand.NewPCG(seed, 0)), n, 300, "child"); err != nil {
			s.Close()
			return fail(err)
		}
	}
	if err := s.Close(); err != nil {
		return fail(err)
	}
	return 0
}

// randomWrites makes n writes to keys r0..r(keys-1) of ns, each value
// written once ("who-i"): Set, SetWithTTL (an hour: nothing expires
// during a test), Delete, SetIfAbsent, CompareAndSwap and CompareAndDelete
// of the value just read, and, rarely, DeleteNamespace.
func randomWrites(s *opstate.Store, ns string, rng *rand.Rand, n, keys int, who string) error {
	for i := range n {
		k := fmt.Sprint("r", rng.IntN(keys))
		v := fmt.Sprintf("%s-%d", who, i)
		var err error
		switch p := rng.IntN(1000); {
		case p < 400:
			err = s.Set(ns, k, v)
		case p < 550:
			err = s.SetWithTTL(ns, k, v, time.Hour)
		case p < 700:
			err = s.Delete(ns, k)
		case p < 800:
			_, err = s.SetIfAbsent(ns, k, v)
		case p < 900:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndSwap(ns, k, old, v)
			}
		case p < 998:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndDelete(ns, k, old)
			}
		default:
			err = s.DeleteNamespace(ns)
		}
		if err != nil {
			return fmt.Errorf("%s: write %d of %s/%s: %w", who, i, ns, k, err)
		}
	}
	return nil
}

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

// marker is the key the tests set to tell that the events before it have
// all been received.
const marker = "~marker"

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

// TestWatchSendsServedChanges checks that an event is sent only once this
// Store's reads serve the change it reports: a consumer that calls Get on
// receiving an OpSet gets that value or a newer one, never the one before.
// The values of each key only grow, so a Get below the event's value reads
// a change the event follows. Three more goroutines read the keys without
// pause, so that the cache's fills race with the drops that precede the
// events. The writer is this Store, another Store (each Set of one key),
// or plain SQL (each UPDATE of 60 keys, so that one check finds many).
func TestWatchSendsServedChanges(t *testing.T) {
	const keys = 60 // fewer than the keys of a namespace-wide change
	key := func(i int) string { return fmt.Sprint("k", i%keys) }
	value := func(i int) string { return fmt.Sprintf("%08d", i) }
	setEach := func(w *opstate.Store, writes int) error {
		for i := range writes {
			if err := w.Set("ns", key(i), value(i)); err != nil {
				return err
			}
		}
		return w.Set("ns", marker, "m")
	}
	tests := []struct {
		name  string
		write func(t *testing.T, path string, s *opstate.Store) error
	}{
		{"own", func(t *testing.T, path string, s *opstate.Store) error { return setEach(s, 500) }},
		{"store", func(t *testing.T, path string, s *opstate.Store) error {
			return setEach(mustOpen(t, path, opstate.Options{SyncInterval: -1}), 1500)
		}},
		{"sql", func(t *testing.T, path string, s *opstate.Store) error {
			db := sqlDB(t, path)
			for i := 1; i <= 150; i++ {
				if _, err := db.Exec(`UPDATE operational_state SET value = ? WHERE namespace = 'ns'`, value(i)); err != nil {
					return err
				}
			}
			_, err := db.Exec(`INSERT INTO operational_state VALUES ('ns', ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, marker)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := dbPath(t)
			s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
			for i := range keys {
				mustSet(t, s, "ns", key(i), value(0))
			}
			ch := watch(t, s, "ns")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for r := range 3 {
				wg.Go(func() {
					for i := r; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.Get("ns", key(i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				if err := tc.write(t, path, s); err != nil {
					t.Error(err)
				}
			})
			var events, stale int
			for {
				ev := recv(t, ch, eventBound)
				if ev.Key == marker {
					break
				}
				if ev.Op != opstate.OpSet {
					t.Errorf("event %s; only Sets were made", eventsString([]opstate.Event{ev}))
					continue
				}
				events++
				got, err := s.Get("ns", ev.Key)
				if err != nil {
					t.Fatal(err)
				}
				if got < ev.Value {
					if stale++; stale <= 3 {
						t.Errorf("Get(ns, %q) on receiving its OpSet of %s = %s, the value before", ev.Key, ev.Value, got)
					}
				}
			}
			close(stop)
			wg.Wait()
			if stale > 0 {
				t.Errorf("%d of %d events were received before Get served them", stale, events)
			}
			t.Logf("%d events", events)
		})
	}
}

// historySQL makes the file record every value its rows take, in commit
// order, by triggers of the test's own: whoever commits, the table
// history says in which order the changes to each key took effect
// (value NULL for a delete).
var historySQL = []string{
	`CREATE TABLE history (seq INTEGER PRIMARY KEY, namespace TEXT, key TEXT, value TEXT)`,
	`CREATE TRIGGER history_insert AFTER INSERT ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (NEW.namespace, NEW.key, NEW.value); END`,
	`CREATE TRIGGER history_update AFTER UPDATE ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (NEW.namespace, NEW.key, NEW.value); END`,
	`CREATE TRIGGER history_delete AFTER DELETE ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (OLD.namespace, OLD.key, NULL); END`,
}

// history returns, for each key of ns, the states it took in commit order:
// "=value", or "-" for a delete.
func history(t *testing.T, db *sql.DB, ns string) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT key, value FROM history WHERE namespace = ? ORDER BY seq`, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := map[string][]string{}
	for rows.Next() {
		var k string
		var v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		st := "-"
		if v.Valid {
			st = "=" + v.String
		}
		h[k] = append(h[k], st)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

// state is what an event says its key holds: "=value", or "-".
func state(ev opstate.Event) string {
	if ev.Op == opstate.OpSet {
		return "=" + ev.Value
	}
	return "-"
}

// TestWatchPerKeyOrder checks that a key's events arrive in commit order.
// Three goroutines of the watching Store and another Store on the file
// write values to the same four keys (each value written once, "w2-17",
// the sequence growing per writer), and delete them now and then, while
// triggers of the test record, in the file, the order in which the
// changes to each key committed. Per key, the states the events report
// must follow that order: a subsequence of the key's history (coalescing
// may skip states, and a state may be reported twice in a row, never
// after a later one). So per key and writer the sequence never goes back.
// Once the writes stop, each key's last event is what List holds.
func TestWatchPerKeyOrder(t *testing.T) {
	path := dbPath(t)
	other := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	db := sqlDB(t, path)
	// Created before s opens the file: a schema change is a Reset.
	for _, q := range historySQL {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	ch := watch(t, s, "ns")
	const keys, writes = 4, 400
	var wg sync.WaitGroup
	for w, st := range []*opstate.Store{s, s, s, other} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range writes {
				k := fmt.Sprint("k", rng.IntN(keys))
				var err error
				if rng.IntN(10) == 0 {
					err = st.Delete("ns", k)
				} else {
					err = st.Set("ns", k, fmt.Sprintf("w%d-%06d", w, i))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		if err := other.Set("ns", marker, "m"); err != nil { // after every foreign write
			t.Error(err)
		}
		close(done)
	}()
	got := map[string][]opstate.Event{}
	for {
		ev := recv(t, ch, eventBound)
		if ev.Key == marker {
			break
		}
		if ev.Op == opstate.OpReset {
			t.Errorf("OpReset, with four keys written and a consumer that keeps up")
			continue
		}
		got[ev.Key] = append(got[ev.Key], ev)
	}
	<-done
	hist := history(t, db, "ns")
	list, err := s.List("ns")
	if err != nil {
		t.Fatal(err)
	}
	for k, evs := range got {
		h, i := hist[k], 0
		for n, ev := range evs {
			st := state(ev)
			for i < len(h) && h[i] != st {
				i++
			}
			if i == len(h) {
				t.Errorf("%s: event %d, %s, is out of commit order: events %s, history %v", k, n, st, eventsString(evs), h)
				break
			}
		}
		last := evs[len(evs)-1]
		if v, ok := list[k]; v != last.Value || ok != (last.Op == opstate.OpSet) {
			t.Errorf("%s: last event %s; List holds %q, %v", k, eventsString([]opstate.Event{last}), v, ok)
		}
	}
	for k := range list {
		if k != marker && len(got[k]) == 0 {
			t.Errorf("%s: no event; List holds %q", k, list[k])
		}
	}
}

// TestWatchConverges is the convergence promise: three goroutines of the
// watching Store make random writes (randomWrites: Set, SetWithTTL, Delete,
// the conditional writes, now and then DeleteNamespace) to one namespace
// while a second process makes its own, and a consumer, deliberately slow,
// builds the namespace from the events (OpReset: List). Twice its backlog
// passes MaxPendingEvents and must be replaced by an OpReset: a burst of
// new keys is set before it starts reading (it re-reads the namespace amid
// the random writes), and another once they have stopped, while it does
// not read. Once the writes
// have stopped and the consumer has drained the channel (a marker set by
// plain SQL after every writer finished has reached it, and nothing comes
// after it), what it built must equal List.
func TestWatchConverges(t *testing.T) {
	path := dbPath(t)
	const ns = "conv"
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	db := sqlDB(t, path)
	ch := watch(t, s, ns)
	const burstKeys = opstate.MaxPendingEvents + 200
	burst := func(prefix string) { // 8 goroutines: their Sets share commits
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := g; i < burstKeys; i += 8 {
					if err := s.Set(ns, fmt.Sprint(prefix, i), "b"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}

	burst("early") // before the consumer reads

	child := childCommand(t, "watch-writer", watchChildDB+"="+path, watchChildNS+"="+ns, watchChildRandom+"=7,700")
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			if err := randomWrites(s, ns, rand.New(rand.NewPCG(uint64(w), 2)), 400, 300, fmt.Sprint("w", w)); err != nil {
				t.Error(err)
			}
		})
	}
	stopped := make(chan struct{})
	go func() {
		writers.Wait()
		if err := child.Wait(); err != nil {
			t.Errorf("child: %v\n%s", err, childOut.String())
		}
		close(stopped)
	}()

	built := map[string]string{}
	var events, resets int
	apply := func(ev opstate.Event) {
		events++
		switch ev.Op {
		case opstate.OpSet:
			built[ev.Key] = ev.Value
		case opstate.OpDelete, opstate.OpExpire:
			delete(built, ev.Key)
		case opstate.OpReset:
			resets++
			m, err := s.List(ns)
			if err != nil {
				t.Fatal(err)
			}
			built = m
		default:
			t.Errorf("event of unknown op %v", ev.Op)
		}
		time.Sleep(20 * time.Microsecond) // a slow consumer
	}
	for reading := true; reading; {
		select {
		case ev := <-ch:
			apply(ev)
		case <-stopped:
			reading = false
		}
	}
	if resets == 0 {
		t.Errorf("no OpReset after %d new keys were set before the consumer read: the backlog was not bounded", burstKeys)
	}
	before, during := resets, events
	burst("late") // while the consumer does not read
	burst("late")
	if _, err := db.Exec(`INSERT INTO operational_state VALUES (?, ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, ns, marker); err != nil {
		t.Fatal(err)
	}
	for built[marker] != "m" {
		apply(recv(t, ch, eventBound))
	}
	if resets == before {
		t.Errorf("no OpReset after %d new keys were set for a consumer not reading: the backlog was not bounded", burstKeys)
	}
	// Drained: nothing more comes.
	for quiet := false; !quiet; {
		select {
		case ev := <-ch:
			apply(ev)
		case <-time.After(20 * watchSync):
			quiet = true
		}
	}
	list, err := s.List(ns)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(built, list) {
		var diff []string
		for k, v := range list {
			if b, ok := built[k]; !ok || b != v {
				diff = append(diff, fmt.Sprintf("%s: built %q, %v; List %q", k, b, ok, v))
			}
		}
		for k, b := range built {
			if _, ok := list[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s: built %q; not in List", k, b))
			}
		}
		slices.Sort(diff)
		t.Errorf("state built from %d events differs from List(%q) in %d keys:\n%s", events, ns, len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
	}
	t.Logf("%d events (%d while the writers wrote), %d resets, %d keys", events, during, resets, len(list))
}

// TestWatchCoalesces checks that the events waiting for a consumer that
// does not read are coalesced per key, the latest winning: a thousand
// writes to each of two keys wait as one event each.
func TestWatchCoalesces(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1})
	ch := watch(t, s, "ns")
	for i := range 1000 {
		mustSet(t, s, "ns", "a", fmt.Sprint(i))
		mustSet(t, s, "ns", "b", fmt.Sprint(i))
	}
	if err := s.Delete("ns", "b"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "c", "x")
	mustSet(t, s, "ns", marker, "m")
	evs := untilSet(t, ch, marker, "m", eventBound)
	// One event may have been taken from the queue, and wait to be
	// received, before the others were queued.
	if len(evs) > 4 {
		t.Errorf("%d events for three keys: %s; want one each (and one sent before)", len(evs), eventsString(evs))
	}
	last := map[string]opstate.Event{}
	for _, ev := range evs {
		last[ev.Key] = ev
	}
	want := map[string]opstate.Event{
		"a": {Namespace: "ns", Key: "a", Op: opstate.OpSet, Value: "999"},
		"b": {Namespace: "ns", Key: "b", Op: opstate.OpDelete},
		"c": {Namespace: "ns", Key: "c", Op: opstate.OpSet, Value: "x"},
	}
	if !maps.Equal(last, want) {
		t.Errorf("events %s; want the last of a, b and c", eventsString(evs))
	}
}

// TestWatchSlowConsumer checks that a watcher that never reads blocks
// nobody and holds a bounded backlog. With one such watcher, 10,000 Sets
// of new keys and as many Gets complete, and another watcher of the
// namespace, reading, receives every one of them and no OpReset. When
// the stalled watcher finally reads, it receives at most one event taken
// before the backlog overflowed, one OpReset in place of the rest, and at
// most MaxPendingEvents events after it, from which, applying the OpReset
// as a List, it builds what List holds.
func TestWatchSlowConsumer(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1})
	stalled := watch(t, s, "ns")
	live := watch(t, s, "ns")
	const n = 10_000
	got := map[string]string{}
	var liveResets int
	received := make(chan struct{})
	go func() {
		defer close(received)
		for ev := range live {
			switch {
			case ev.Key == marker:
				return
			case ev.Op == opstate.OpSet:
				got[ev.Key] = ev.Value
			default:
				liveResets++
			}
		}
	}()
	within(t, 60*time.Second, "10,000 Sets and Gets with a watcher that does not read", func() {
		for i := range n {
			if err := s.Set("ns", fmt.Sprint("k", i), fmt.Sprint(i)); err != nil {
				t.Error(err)
				return
			}
			if v, err := s.Get("ns", fmt.Sprint("k", i/2)); err != nil || v != fmt.Sprint(i/2) {
				t.Errorf("Get(ns, k%d) = %q, %v; want %d", i/2, v, err, i/2)
				return
			}
		}
	})
	mustSet(t, s, "ns", marker, "m")
	within(t, eventBound, "the reading watcher's receiving every Set", func() { <-received })
	if len(got) != n || liveResets != 0 {
		t.Errorf("the reading watcher received %d keys' Sets and %d other events; want all %d and none", len(got), liveResets, n)
	}
	for i := range n {
		if k := fmt.Sprint("k", i); got[k] != fmt.Sprint(i) {
			t.Errorf("the reading watcher received %s = %q; want %d", k, got[k], i)
			break
		}
	}

	evs := untilSet(t, stalled, marker, "m", eventBound)
	reset := slices.IndexFunc(evs, func(ev opstate.Event) bool { return ev.Op == opstate.OpReset })
	if reset < 0 {
		t.Fatalf("%d events and no OpReset for %d keys pending", len(evs), n)
	}
	if reset > 1 {
		t.Errorf("%d events before the OpReset; want at most one", reset)
	}
	after := evs[reset+1:]
	if slices.ContainsFunc(after, func(ev opstate.Event) bool { return ev.Op == opstate.OpReset }) {
		t.Errorf("more than one OpReset")
	}
	if len(after)+1 > opstate.MaxPendingEvents { // the marker was pending too
		t.Errorf("%d events pending after the OpReset; want at most MaxPendingEvents = %d", len(after)+1, opstate.MaxPendingEvents)
	}
	built, err := s.List("ns") // at the OpReset: nothing was written since
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range after {
		built[ev.Key] = ev.Value
	}
	built[marker] = "m"
	list, err := s.List("ns")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(built, list) {
		t.Errorf("the stalled watcher built %d keys; List holds %d", len(built), len(list))
	}
	t.Logf("stalled watcher: %d events before the OpReset, %d after", reset, len(after))
}

// TestWatchLifecycle checks when a watch ends: its channel is closed, and
// its goroutine gone, once its ctx is cancelled, and once the Store is
// closed, even with events pending for a consumer that is not reading.
// Watch after Close returns ErrClosed, of an empty namespace ErrEmptyName,
// and with a ctx already ended either ctx's error or a channel that is
// closed.
func TestWatchLifecycle(t *testing.T) {
	t.Run("ctx cancelled", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: watchSync})
		before := deliverers()
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := s.Watch(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, s, "ns", "k", "v")
		if ev := recv(t, ch, eventBound); ev.Key != "k" {
			t.Errorf("event %s; want the Set of k", eventsString([]opstate.Event{ev}))
		}
		for i := range 100 {
			mustSet(t, s, "ns", "k", fmt.Sprint(i)) // pending when ctx ends
		}
		cancel()
		waitClosed(t, ch, eventBound)
		wantDeliverers(t, before)
		mustSet(t, s, "ns", "k", "after") // a write with no watcher left
	})
	t.Run("Close with events pending", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: watchSync})
		before := deliverers()
		ch := watch(t, s, "ns")
		for i := range 100 {
			mustSet(t, s, "ns", fmt.Sprint("k", i), "v")
		}
		within(t, eventBound, "Close with a watcher not reading", func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		if n := waitClosed(t, ch, eventBound); n > 1 {
			t.Errorf("%d events after Close returned; want at most the one already taken", n)
		}
		wantDeliverers(t, before)
	})
	t.Run("Watch after Close", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"ns", ""} {
			if ch, err := s.Watch(context.Background(), ns); !errors.Is(err, opstate.ErrClosed) || ch != nil {
				t.Errorf("Watch(%q) after Close = %v, %v; want nil, ErrClosed", ns, ch, err)
			}
		}
	})
	t.Run("empty namespace", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		if ch, err := s.Watch(context.Background(), ""); !errors.Is(err, opstate.ErrEmptyName) || ch != nil {
			t.Errorf(`Watch("") = %v, %v; want nil, ErrEmptyName`, ch, err)
		}
	})
	t.Run("ctx already ended", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		before := deliverers()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ch, err := s.Watch(ctx, "ns")
		switch {
		case err != nil && (!errors.Is(err, context.Canceled) || ch != nil):
			t.Errorf("Watch with an ended ctx = %v, %v; want nil, context.Canceled, or a closed channel", ch, err)
		case err == nil:
			mustSet(t, s, "ns", "k", "v")
			waitClosed(t, ch, eventBound)
		}
		wantDeliverers(t, before)
	})
}

// TestWatchCloseRaces opens and cancels many watches at once while this
// Store writes (with expiring keys, so that the background sweeper deletes
// and sends), plain SQL on another connection writes many keys of the
// watched namespaces (so that the foreign sync reads and sends), and the
// Store closes in the middle of it, round after round, under -race: Close
// must return, every channel must be closed, no goroutine of Watch may be
// left (and TestMain's leak check sees none of the Store's), and nothing
// may panic (a send on a closed channel).
func TestWatchCloseRaces(t *testing.T) {
	before := deliverers()
	for round := range 8 {
		path := dbPath(t)
		s, err := opstate.Open(path, opstate.Options{SyncInterval: time.Millisecond, SweepInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		db := sqlDB(t, path)
		ns := func(i int) string { return fmt.Sprint("ns", i%8) }
		var closed atomic.Bool
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					var err error
					if i%3 == 0 {
						err = s.SetWithTTL(ns(i+w), fmt.Sprint("t", i%50), "v", time.Millisecond)
					} else {
						err = s.Set(ns(i+w), fmt.Sprint("k", i%50), fmt.Sprint(i))
					}
					if errors.Is(err, opstate.ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					time.Sleep(100 * time.Microsecond) // leave the write lock to the other connection too
				}
			})
		}
		wg.Go(func() {
			for i := 0; !closed.Load(); i++ {
				// 400 keys, 50 of each namespace: below the count past
				// which a namespace is dropped whole, so each is read.
				q := `WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 399)
					INSERT INTO operational_state (namespace, key, value, updated_at)
					SELECT 'ns' || (x % 8), 'f' || x, ?, '2026-03-07T10:00:00.000Z' FROM n WHERE true
					ON CONFLICT DO UPDATE SET value = excluded.value`
				if _, err := db.Exec(q, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond) // leave the Store the write lock most of the time
			}
		})
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					ctx, cancel := context.WithCancel(context.Background())
					ch, err := s.Watch(ctx, ns(i+w))
					if errors.Is(err, opstate.ErrClosed) {
						cancel()
						return
					}
					if err != nil {
						t.Error(err)
						cancel()
						return
					}
					for range i % 5 {
						if _, ok := <-ch; !ok {
							break
						}
					}
					if i%10 != 9 {
						cancel() // the others stay open until Close
					}
					drainUntilClosed(t, ch, &closed)
					cancel()
				}
			})
		}
		time.Sleep(time.Duration(20+round*5) * time.Millisecond)
		within(t, eventBound, "Close amid watches, writes, sweeps and foreign writes", func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		closed.Store(true)
		within(t, eventBound, "the round's goroutines", wg.Wait)
		db.Close()
	}
	wantDeliverers(t, before)
}

// drainUntilClosed reads ch until it is closed, which it must be within
// eventBound of closed being set (the Store's Close returned).
func drainUntilClosed(t *testing.T, ch <-chan opstate.Event, closed *atomic.Bool) {
	var since time.Time
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(time.Millisecond):
			if !closed.Load() {
				continue
			}
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) > eventBound {
				t.Error("watch channel still open after Close returned")
				return
			}
		}
	}
}

// TestWatchPreciseInvalidation checks, through the Store, that a foreign
// commit drops from the cache only what it changed. With 1,000 keys of one
// namespace and 100 of another cached: a write by plain SQL to one key
// drops exactly that entry, and reading all 1,000 keys afterwards reads
// SQLite once; writes to another table of the file drop nothing; another
// connection's deletion of the other namespace (a namespace-wide change)
// drops its 100 entries and none of the first namespace's. A watcher tells
// when each foreign commit has been applied. (The other table is created
// before the Store opens the file: creating it is a schema change, which
// empties the cache, TestChangesSchemaChange in persist.)
func TestWatchPreciseInvalidation(t *testing.T) {
	path := dbPath(t)
	mustOpen(t, path, opstate.Options{SyncInterval: -1}).Close()
	db := sqlDB(t, path)
	if _, err := db.Exec(`CREATE TABLE app (id INTEGER PRIMARY KEY, note TEXT)`); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	hot := make([]string, 1000)
	for i := range hot {
		hot[i] = fmt.Sprint("k", i)
		mustSet(t, s, "hot", hot[i], "v")
	}
	for i := range 100 {
		mustSet(t, s, "cold", fmt.Sprint("k", i), "v")
	}
	for i := range 3 {
		mustSet(t, s, "small", fmt.Sprint("k", i), "v")
	}
	warm(t, s, "hot", hot...)
	events := watch(t, s, "hot")
	marks := watch(t, s, "mark")
	mark := 0
	// applied sets a key of the namespace mark by plain SQL and waits for
	// its event: every foreign commit before it has been applied.
	applied := func() {
		t.Helper()
		mark++
		if _, err := db.Exec(`INSERT INTO operational_state VALUES ('mark', ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, fmt.Sprint(mark)); err != nil {
			t.Fatal(err)
		}
		untilSet(t, marks, fmt.Sprint(mark), "m", foreignBound)
	}
	// readsOf returns how many reads of SQLite reading every hot key took,
	// and checks their values.
	readsOf := func(changed string) uint64 {
		t.Helper()
		loads := s.Stats().Misses
		for _, k := range hot {
			want := "v"
			if k == changed {
				want = "new"
			}
			wantGet(t, s, "hot", k, want, true)
		}
		return s.Stats().Misses - loads
	}
	entries := s.CacheStats().Entries
	if want := 1000 + 100 + 3; entries != want {
		t.Fatalf("CacheStats().Entries = %d after the writes; want %d", entries, want)
	}

	if _, err := db.Exec(`UPDATE operational_state SET value = 'new' WHERE namespace = 'hot' AND key = 'k7'`); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events, foreignBound); ev.Key != "k7" || ev.Value != "new" {
		t.Fatalf("event %s; want the Set of k7", eventsString([]opstate.Event{ev}))
	}
	if got := s.CacheStats().Entries; got != entries-1 {
		t.Errorf("a foreign write to one key left %d entries of %d; want %d", got, entries, entries-1)
	}
	if n := readsOf("k7"); n != 1 {
		t.Errorf("reading the 1,000 keys after a foreign write to one of them read SQLite %d times; want 1", n)
	}

	for i := range 10 {
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS app (id INTEGER PRIMARY KEY, note TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO app (note) VALUES (?)`, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	applied()
	if got := s.CacheStats().Entries; got != entries {
		t.Errorf("writes to another table of the file left %d entries; want %d", got, entries)
	}
	if n := readsOf("k7"); n != 0 {
		t.Errorf("reading the 1,000 keys after writes to another table read SQLite %d times; want 0", n)
	}

	if _, err := db.Exec(`DELETE FROM operational_state WHERE namespace = 'cold'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM operational_state WHERE namespace = 'small'`); err != nil {
		t.Fatal(err)
	}
	applied()
	if got := s.CacheStats().Entries; got != entries-103 {
		t.Errorf("foreign deletes of the namespaces cold (100 keys) and small (3) left %d entries of %d; want %d", got, entries, entries-103)
	}
	if n := readsOf("k7"); n != 0 {
		t.Errorf("reading the 1,000 keys after another namespace was deleted read SQLite %d times; want 0", n)
	}
	wantGet(t, s, "cold", "k1", "", false)
	wantGet(t, s, "small", "k1", "", false)
}
