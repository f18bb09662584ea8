package opstate_test

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// rowOf returns the row of ns/key in SQLite, every column as SQLite holds
// it, or "no row": what a conditional write that changed nothing must
// leave as it was, updated_at included.
func rowOf(t *testing.T, db *sql.DB, ns, key string) string {
	t.Helper()
	var value, updated string
	var expires sql.NullString
	err := db.QueryRow(`SELECT value, updated_at, expires_at FROM operational_state WHERE namespace = ? AND key = ?`,
		ns, key).Scan(&value, &updated, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "no row"
	case err != nil:
		t.Fatalf("reading the row of %s/%s: %v", ns, key, err)
	}
	return fmt.Sprintf("value %q, updated_at %s, expires_at %v", value, updated, expires)
}

// condState is what a key holds before a conditional write, set up at the
// clock the write then runs at.
type condState struct {
	name  string
	setup func(s *opstate.Store, clk *clock, ns, key string) error
}

var (
	stMissing = condState{"missing", func(*opstate.Store, *clock, string, string) error { return nil }}
	stValue   = condState{"old", func(s *opstate.Store, _ *clock, ns, key string) error { return s.Set(ns, key, "old") }}
	stEmpty   = condState{"empty", func(s *opstate.Store, _ *clock, ns, key string) error { return s.Set(ns, key, "") }}
	stTTL     = condState{"old for 1h", func(s *opstate.Store, _ *clock, ns, key string) error {
		return s.SetWithTTL(ns, key, "old", time.Hour)
	}}
	// stBrink is live for one more millisecond.
	stBrink = condState{"old for 1ms", func(s *opstate.Store, clk *clock, ns, key string) error {
		err := s.SetWithTTL(ns, key, "old", time.Second)
		clk.Advance(time.Second - time.Millisecond)
		return err
	}}
	// stExpired has expired at this very millisecond (now == expiry): its
	// row is still in SQLite, and the key is absent.
	stExpired = condState{"expired", func(s *opstate.Store, clk *clock, ns, key string) error {
		err := s.SetWithTTL(ns, key, "old", time.Second)
		clk.Advance(time.Second)
		return err
	}}
)

// condAfter is what a key must read as after the write: absent, or value
// expiring ttl after the write (0: never).
type condAfter struct {
	value string
	ok    bool
	ttl   time.Duration
}

var absentAfter = condAfter{}

func live(v string, ttl time.Duration) condAfter { return condAfter{value: v, ok: true, ttl: ttl} }

// TestConditionalWrites checks the semantics of each conditional write,
// through the Store, from its cache and from SQLite: a key that is missing
// or expired (now == expiry included) is absent, the empty string is a
// value, CompareAndSwap clears the expiry and the WithTTL variants set
// their own, and a write that answers false changes nothing — its row in
// SQLite stays as it was, updated_at included. Before each call the Store
// has read the key, so that its cache holds the old state; afterwards the
// key is read through the Store and through a second, uncached Store on the
// file, then at the edges of its expiry.
func TestConditionalWrites(t *testing.T) {
	const ttl = 10 * time.Second
	sia := func(s *opstate.Store, ns, k string) (bool, error) { return s.SetIfAbsent(ns, k, "new") }
	siaTTL := func(s *opstate.Store, ns, k string) (bool, error) { return s.SetIfAbsentWithTTL(ns, k, "new", ttl) }
	cas := func(old, new string) func(*opstate.Store, string, string) (bool, error) {
		return func(s *opstate.Store, ns, k string) (bool, error) { return s.CompareAndSwap(ns, k, old, new) }
	}
	casTTL := func(s *opstate.Store, ns, k string) (bool, error) {
		return s.CompareAndSwapWithTTL(ns, k, "old", "new", ttl)
	}
	cad := func(old string) func(*opstate.Store, string, string) (bool, error) {
		return func(s *opstate.Store, ns, k string) (bool, error) { return s.CompareAndDelete(ns, k, old) }
	}
	tests := []struct {
		call   string
		do     func(s *opstate.Store, ns, key string) (bool, error)
		before condState
		want   bool
		after  condAfter
	}{
		{"SetIfAbsent(new)", sia, stMissing, true, live("new", 0)},
		{"SetIfAbsent(new)", sia, stExpired, true, live("new", 0)},
		{"SetIfAbsent(new)", sia, stValue, false, live("old", 0)},
		{"SetIfAbsent(new)", sia, stEmpty, false, live("", 0)},
		{"SetIfAbsent(new)", sia, stTTL, false, live("old", time.Hour)},
		{"SetIfAbsent(new)", sia, stBrink, false, live("old", time.Millisecond)},
		{"SetIfAbsentWithTTL(new, 10s)", siaTTL, stMissing, true, live("new", ttl)},
		{"SetIfAbsentWithTTL(new, 10s)", siaTTL, stExpired, true, live("new", ttl)},
		{"SetIfAbsentWithTTL(new, 10s)", siaTTL, stValue, false, live("old", 0)},
		{"SetIfAbsentWithTTL(new, 10s)", siaTTL, stEmpty, false, live("", 0)},
		{"SetIfAbsentWithTTL(new, 10s)", siaTTL, stBrink, false, live("old", time.Millisecond)},
		{"CompareAndSwap(old, new)", cas("old", "new"), stValue, true, live("new", 0)},
		{"CompareAndSwap(old, new)", cas("old", "new"), stTTL, true, live("new", 0)},
		{"CompareAndSwap(old, new)", cas("old", "new"), stBrink, true, live("new", 0)},
		{"CompareAndSwap(old, new)", cas("old", "new"), stExpired, false, absentAfter},
		{"CompareAndSwap(old, new)", cas("old", "new"), stMissing, false, absentAfter},
		{"CompareAndSwap(old, new)", cas("old", "new"), stEmpty, false, live("", 0)},
		{"CompareAndSwap(OLD, new)", cas("OLD", "new"), stValue, false, live("old", 0)},
		{"CompareAndSwap(old, \"\")", cas("old", ""), stValue, true, live("", 0)},
		{"CompareAndSwap(\"\", new)", cas("", "new"), stEmpty, true, live("new", 0)},
		{"CompareAndSwap(\"\", new)", cas("", "new"), stMissing, false, absentAfter},
		{"CompareAndSwap(\"\", new)", cas("", "new"), stExpired, false, absentAfter},
		{"CompareAndSwapWithTTL(old, new, 10s)", casTTL, stValue, true, live("new", ttl)},
		{"CompareAndSwapWithTTL(old, new, 10s)", casTTL, stTTL, true, live("new", ttl)},
		{"CompareAndSwapWithTTL(old, new, 10s)", casTTL, stExpired, false, absentAfter},
		{"CompareAndSwapWithTTL(old, new, 10s)", casTTL, stMissing, false, absentAfter},
		{"CompareAndSwapWithTTL(old, new, 10s)", casTTL, stEmpty, false, live("", 0)},
		{"CompareAndDelete(old)", cad("old"), stValue, true, absentAfter},
		{"CompareAndDelete(old)", cad("old"), stTTL, true, absentAfter},
		{"CompareAndDelete(old)", cad("old"), stBrink, true, absentAfter},
		{"CompareAndDelete(old)", cad("old"), stExpired, false, absentAfter},
		{"CompareAndDelete(old)", cad("old"), stMissing, false, absentAfter},
		{"CompareAndDelete(old)", cad("old"), stEmpty, false, live("", 0)},
		{"CompareAndDelete(ol)", cad("ol"), stValue, false, live("old", 0)},
		{"CompareAndDelete(\"\")", cad(""), stEmpty, true, absentAfter},
		{"CompareAndDelete(\"\")", cad(""), stMissing, false, absentAfter},
		{"CompareAndDelete(\"\")", cad(""), stValue, false, live("old", 0)},
	}
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		clk := newClock()
		opts.Clock = clk.Now
		s := mustOpen(t, path, opts)
		// SQLite's view, through a Store that caches nothing.
		file := mustOpen(t, path, opstate.Options{Clock: clk.Now, CacheBytes: -1})
		db := sqlDB(t, path)
		const ns = "cond"
		for i, tt := range tests {
			key := fmt.Sprint("k", i)
			name := fmt.Sprintf("%s of %s", tt.call, tt.before.name)
			if err := tt.before.setup(s, clk, ns, key); err != nil {
				t.Fatalf("%s: setup: %v", name, err)
			}
			s.Lookup(ns, key) // the cache holds the state before
			row := rowOf(t, db, ns, key)
			got, err := tt.do(s, ns, key)
			if err != nil || got != tt.want {
				t.Errorf("%s = %v, %v; want %v, nil", name, got, err, tt.want)
				continue
			}
			if !got {
				if after := rowOf(t, db, ns, key); after != row {
					t.Errorf("%s = false changed the row: %s; want %s", name, after, row)
				}
			}
			a := tt.after
			for _, st := range []struct {
				name string
				s    *opstate.Store
			}{{"the Store", s}, {"SQLite", file}} {
				if v, ok, err := st.s.Lookup(ns, key); v != a.value || ok != a.ok || err != nil {
					t.Errorf("after %s, %s reads %q, %v, %v; want %q, %v, nil", name, st.name, v, ok, err, a.value, a.ok)
				}
			}
			// The expiry: still there a millisecond before it, gone on it;
			// or, with none, still there 1000 hours later.
			if !a.ok {
				continue
			}
			steps := []struct {
				wait time.Duration
				want condAfter
			}{{1000 * time.Hour, a}}
			if a.ttl > 0 {
				steps = []struct {
					wait time.Duration
					want condAfter
				}{{a.ttl - time.Millisecond, a}, {time.Millisecond, absentAfter}}
			}
			var since time.Duration
			for _, step := range steps {
				clk.Advance(step.wait)
				since += step.wait
				for _, st := range []*opstate.Store{s, file} {
					if v, ok, err := st.Lookup(ns, key); v != step.want.value || ok != step.want.ok || err != nil {
						t.Errorf("%v after %s: Lookup = %q, %v, %v; want %q, %v, nil", since, name, v, ok, err, step.want.value, step.want.ok)
					}
				}
			}
		}
	})
}

// TestConditionalBadInput checks that the conditional writes refuse what
// Set and SetWithTTL refuse, with the same errors, changing nothing: an
// empty namespace or key (ErrEmptyName), a TTL of zero, -1ns or the
// smallest Duration (ErrInvalidTTL), any call after Close (ErrClosed, even
// with bad input), and a call whose Clock panics (an error naming
// Options.Clock, no panic). Every refused call would have changed a key had
// it been accepted. The TTLs SetWithTTL accepts at the edges, 1ns (one
// millisecond, rounded up) and the largest Duration, are accepted too.
func TestConditionalBadInput(t *testing.T) {
	path := dbPath(t)
	now, broken := breakableClock()
	s := mustOpen(t, path, opstate.Options{Clock: now})
	db := sqlDB(t, path)
	mustSet(t, s, "ns", "k", "old")
	row := rowOf(t, db, "ns", "k")
	// Each call, given ns and key, would change ns/key: "old" or absent.
	calls := []struct {
		name string
		key  string
		do   func(ns, key string, ttl time.Duration) (bool, error)
	}{
		{"SetIfAbsent", "absent", func(ns, key string, _ time.Duration) (bool, error) { return s.SetIfAbsent(ns, key, "new") }},
		{"SetIfAbsentWithTTL", "absent", func(ns, key string, ttl time.Duration) (bool, error) {
			return s.SetIfAbsentWithTTL(ns, key, "new", ttl)
		}},
		{"CompareAndSwap", "k", func(ns, key string, _ time.Duration) (bool, error) { return s.CompareAndSwap(ns, key, "old", "new") }},
		{"CompareAndSwapWithTTL", "k", func(ns, key string, ttl time.Duration) (bool, error) {
			return s.CompareAndSwapWithTTL(ns, key, "old", "new", ttl)
		}},
		{"CompareAndDelete", "k", func(ns, key string, _ time.Duration) (bool, error) { return s.CompareAndDelete(ns, key, "old") }},
	}
	unchanged := func(when string) {
		t.Helper()
		if got := rowOf(t, db, "ns", "k"); got != row {
			t.Errorf("%s: ns/k is %s; want %s", when, got, row)
		}
		if got := rowOf(t, db, "ns", "absent"); got != "no row" {
			t.Errorf("%s: ns/absent is %s; want no row", when, got)
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM operational_state`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: %d rows, %v; want 1", when, n, err)
		}
	}
	want := func(name string, got bool, err, want error) {
		t.Helper()
		if got || !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "opstate: ") {
			t.Errorf("%s = %v, %v; want false, %v", name, got, err, want)
		}
	}

	for _, c := range calls {
		ok, err := c.do("", c.key, time.Hour)
		want(c.name+" with an empty namespace", ok, err, opstate.ErrEmptyName)
		ok, err = c.do("ns", "", time.Hour)
		want(c.name+" with an empty key", ok, err, opstate.ErrEmptyName)
		if !strings.HasSuffix(c.name, "WithTTL") {
			continue
		}
		for _, ttl := range []time.Duration{0, -1, math.MinInt64} {
			ok, err := c.do("ns", c.key, ttl)
			want(fmt.Sprintf("%s with ttl %v", c.name, ttl), ok, err, opstate.ErrInvalidTTL)
		}
	}
	unchanged("after bad input")

	broken.Store(true)
	for _, c := range calls {
		var ok bool
		var err error
		panicked := func() (p any) {
			defer func() { p = recover() }()
			ok, err = c.do("ns", c.key, time.Hour)
			return nil
		}()
		if panicked != nil || ok || err == nil || !strings.Contains(err.Error(), "Clock panicked") {
			t.Errorf("%s with a panicking Clock = %v, %v, panic %v; want false and an error naming Options.Clock", c.name, ok, err, panicked)
		}
	}
	broken.Store(false)
	unchanged("after calls with a panicking Clock")

	// The edges SetWithTTL accepts: 1ns expires a millisecond later, the
	// largest Duration at the end of the year 9999.
	clkEdges := newClock()
	e := mustOpen(t, dbPath(t), opstate.Options{Clock: clkEdges.Now})
	for _, ttl := range []time.Duration{1, math.MaxInt64} {
		key := fmt.Sprint("ttl", int64(ttl))
		if ok, err := e.SetIfAbsentWithTTL("ns", key, "a", ttl); !ok || err != nil {
			t.Errorf("SetIfAbsentWithTTL(ttl %v) = %v, %v; want true, nil", ttl, ok, err)
		}
		if ok, err := e.CompareAndSwapWithTTL("ns", key, "a", "b", ttl); !ok || err != nil {
			t.Errorf("CompareAndSwapWithTTL(ttl %v) = %v, %v; want true, nil", ttl, ok, err)
		}
		wantGet(t, e, "ns", key, "b", true)
	}
	clkEdges.Advance(time.Millisecond)
	wantGet(t, e, "ns", "ttl1", "", false)
	clkEdges.Advance(1000 * time.Hour)
	wantGet(t, e, "ns", "ttl"+strconv.FormatInt(math.MaxInt64, 10), "b", true)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		ok, err := c.do("ns", c.key, time.Hour)
		want(c.name+" after Close", ok, err, opstate.ErrClosed)
		ok, err = c.do("ns", "", 0)
		want(c.name+" after Close with bad input", ok, err, opstate.ErrClosed)
	}
	unchanged("after calls on the closed Store")
}

// TestConditionalRefusalRefreshes checks that a conditional write that
// answers false refreshes this Store's cached entry for the key from what
// SQLite holds, so that a loop of Get and CompareAndSwap converges at once
// even when someone else changed the key and this Store has not noticed.
// The Store never checks for foreign writes (SyncInterval -1) and has the
// key cached; another Store, or plain SQL, changes it; the Store still
// serves the old value, which proves it did not notice. After the refused
// write, the next Lookup returns what SQLite holds, expiry included, from
// the cache: it costs no SQLite read.
func TestConditionalRefusalRefreshes(t *testing.T) {
	clk := newClock()
	at := clk.Now().Add(time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	tests := []struct {
		name    string
		before  *string // nil: absent
		foreign string  // SQL, or "store:" and a value another Store sets
		refused func(s *opstate.Store, ns, key string) (bool, error)
		after   condAfter
	}{
		{"CompareAndSwap of an overwritten value", ptr("v1"), "store:v2",
			func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndSwap(ns, key, "v1", "v3") },
			live("v2", 0)},
		{"CompareAndSwapWithTTL of a value updated by SQL", ptr("v1"), `UPDATE operational_state SET value = 'v2' WHERE key = ?`,
			func(s *opstate.Store, ns, key string) (bool, error) {
				return s.CompareAndSwapWithTTL(ns, key, "v1", "v3", time.Hour)
			},
			live("v2", 0)},
		{"SetIfAbsent of a key inserted by another Store", nil, "store:v2",
			func(s *opstate.Store, ns, key string) (bool, error) { return s.SetIfAbsent(ns, key, "v3") },
			live("v2", 0)},
		{"SetIfAbsentWithTTL of a key inserted by SQL, with an expiry", nil,
			`INSERT INTO operational_state VALUES ('ns', ?, 'v2', '2026-03-07T10:00:00.000Z', '` + at + `')`,
			func(s *opstate.Store, ns, key string) (bool, error) {
				return s.SetIfAbsentWithTTL(ns, key, "v3", time.Hour)
			},
			live("v2", time.Second)},
		{"CompareAndDelete of an overwritten value", ptr("v1"), "store:v2",
			func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndDelete(ns, key, "v1") },
			live("v2", 0)},
		{"CompareAndSwap of a key deleted by SQL", ptr("v1"), `DELETE FROM operational_state WHERE key = ?`,
			func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndSwap(ns, key, "v1", "v3") },
			absentAfter},
		{"CompareAndDelete of a key expired by SQL", ptr("v1"),
			`UPDATE operational_state SET expires_at = '2000-01-01T00:00:00.000Z' WHERE key = ?`,
			func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndDelete(ns, key, "v1") },
			absentAfter},
	}
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now, SyncInterval: -1})
	other := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	db := sqlDB(t, path)
	for i, tt := range tests {
		key := fmt.Sprint("k", i)
		old := condAfter{}
		if tt.before != nil {
			mustSet(t, s, "ns", key, *tt.before)
			old = live(*tt.before, 0)
		}
		wantGet(t, s, "ns", key, old.value, old.ok) // cached
		var err error
		if v, ok := strings.CutPrefix(tt.foreign, "store:"); ok {
			err = other.Set("ns", key, v)
		} else {
			_, err = db.Exec(tt.foreign, key)
		}
		if err != nil {
			t.Fatalf("%s: the foreign write: %v", tt.name, err)
		}
		wantGet(t, s, "ns", key, old.value, old.ok) // not noticed
		if ok, err := tt.refused(s, "ns", key); ok || err != nil {
			t.Errorf("%s = %v, %v; want false, nil", tt.name, ok, err)
		}
		loads := s.Stats().Misses
		wantGet(t, s, "ns", key, tt.after.value, tt.after.ok)
		if n := s.Stats().Misses - loads; n != 0 {
			t.Errorf("%s: the Lookup after it read SQLite %d times; want 0: the refusal refreshes the cached entry", tt.name, n)
		}
		if tt.after.ttl > 0 {
			clk.Advance(tt.after.ttl - time.Millisecond)
			wantGet(t, s, "ns", key, tt.after.value, true)
			clk.Advance(time.Millisecond)
			wantGet(t, s, "ns", key, "", false)
		}
	}

	// A read-then-CompareAndSwap loop converges in two iterations: one
	// refused on the stale value, one that swaps the value found.
	mustSet(t, s, "ns", "counter", "5")
	wantGet(t, s, "ns", "counter", "5", true)
	if err := other.Set("ns", "counter", "7"); err != nil {
		t.Fatal(err)
	}
	iterations := 0
	for swapped := false; !swapped && iterations < 10; {
		iterations++
		v, err := s.Get("ns", "counter")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("Get = %q; want a number", v)
		}
		if swapped, err = s.CompareAndSwap("ns", "counter", v, strconv.Itoa(n+1)); err != nil {
			t.Fatal(err)
		}
	}
	if iterations != 2 {
		t.Errorf("the read-then-CompareAndSwap loop took %d iterations; want 2", iterations)
	}
	var v string
	if err := db.QueryRow(`SELECT value FROM operational_state WHERE namespace = 'ns' AND key = 'counter'`).Scan(&v); err != nil || v != "8" {
		t.Errorf("counter in SQLite = %q, %v; want 8, nil", v, err)
	}
}

func ptr(s string) *string { return &s }
