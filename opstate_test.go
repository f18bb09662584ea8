package opstate_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	_ "modernc.org/sqlite"
)

// clock is a settable time source for Options.Clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state.db")
}

// mustOpen opens a store at path with opts, as given, and closes it at the
// end of the test, failing the test if Close fails. (The default sweeper
// runs a minute after Open, later than any test here waits, unless opts
// asks for it sooner.)
func mustOpen(t testing.TB, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q) = %v", path, err)
		}
	})
	return s
}

func mustSet(t testing.TB, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q) = %v", ns, key, err)
	}
}

func wantGet(t testing.TB, s *opstate.Store, ns, key, want string, wantOK bool) {
	t.Helper()
	got, ok, err := s.Lookup(ns, key)
	if err != nil || got != want || ok != wantOK {
		t.Errorf("Lookup(%q, %q) = %.40q, %v, %v; want %.40q, %v, nil", ns, key, got, ok, err, want, wantOK)
	}
}

// sqlDB opens the store's file with plain database/sql, as an operator's
// tool would.
func sqlDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// cacheModes runs f with the cache on and off, so that every semantic holds
// for what the cache serves and for what SQLite serves.
func cacheModes(t *testing.T, f func(t *testing.T, opts opstate.Options)) {
	t.Run("cached", func(t *testing.T) { f(t, opstate.Options{}) })
	t.Run("uncached", func(t *testing.T) { f(t, opstate.Options{CacheBytes: -1}) })
}

func TestGetMissingAndExpired(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		clk := newClock()
		opts.Clock = clk.Now
		s := mustOpen(t, dbPath(t), opts)
		wantGet(t, s, "ns", "missing", "", false)
		if v, err := s.Get("ns", "missing"); v != "" || err != nil {
			t.Errorf("Get(missing) = %q, %v; want \"\", nil", v, err)
		}
		if err := s.SetWithTTL("ns", "k", "v", time.Second); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "ns", "k", "v", true)
		clk.Advance(time.Second)
		wantGet(t, s, "ns", "k", "", false)
		if v, err := s.Get("ns", "k"); v != "" || err != nil {
			t.Errorf("Get(expired) = %q, %v; want \"\", nil", v, err)
		}
	})
}

func TestListLiveOnlyNeverNil(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: clk.Now})
	m, err := s.List("empty")
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("List(empty) = %v (nil: %v), %v; want empty non-nil map", m, m == nil, err)
	}
	mustSet(t, s, "ns", "a", "1")
	mustSet(t, s, "ns", "b", "")
	mustSet(t, s, "other", "c", "3")
	if err := s.SetWithTTL("ns", "short", "x", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWithTTL("ns", "long", "y", time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	m, err = s.List("ns")
	want := map[string]string{"a": "1", "b": "", "long": "y"}
	if err != nil || fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("List(ns) = %v, %v; want %v", m, err, want)
	}
}

func TestSetClearsExpiryAndRefreshesUpdatedAt(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	if err := s.SetWithTTL("ns", "k", "v1", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(500 * time.Millisecond)
	mustSet(t, s, "ns", "k", "v2")
	clk.Advance(time.Hour)
	wantGet(t, s, "ns", "k", "v2", true)

	var updated string
	var expires sql.NullString
	db := sqlDB(t, path)
	if err := db.QueryRow(`SELECT updated_at, expires_at FROM operational_state WHERE namespace='ns' AND key='k'`).Scan(&updated, &expires); err != nil {
		t.Fatal(err)
	}
	if want := "2026-03-07T10:00:00.500Z"; updated != want || expires.Valid {
		t.Errorf("updated_at, expires_at = %q, %v; want %q, NULL", updated, expires, want)
	}
}

// TestTTLMillisecond checks that a TTL is honoured to the millisecond, by
// the cache and by SQLite alike.
func TestTTLMillisecond(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		for _, ttl := range []time.Duration{time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond, 1234567 * time.Microsecond} {
			clk := newClock()
			clk.Advance(123456789) // not on a second boundary
			opts.Clock = clk.Now
			path := dbPath(t)
			s := mustOpen(t, path, opts)
			if err := s.SetWithTTL("ns", "k", "v", ttl); err != nil {
				t.Fatal(err)
			}
			// Live until the ttl has passed, gone within a millisecond
			// after it.
			clk.Advance(ttl - time.Nanosecond)
			wantGet(t, s, "ns", "k", "v", true)
			clk.Advance(time.Millisecond + time.Nanosecond)
			wantGet(t, s, "ns", "k", "", false)

			// The same after a reopen, from SQLite.
			s.Close()
			clk.Advance(-time.Millisecond - time.Nanosecond)
			s = mustOpen(t, path, opts)
			wantGet(t, s, "ns", "k", "v", true)
			clk.Advance(time.Millisecond + time.Nanosecond)
			wantGet(t, s, "ns", "k", "", false)
		}
	})
}

func TestDeleteNothingIsFine(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{})
	if err := s.Delete("ns", "nothing"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	if err := s.DeleteNamespace("nothing"); err != nil {
		t.Errorf("DeleteNamespace(missing) = %v", err)
	}
	mustSet(t, s, "ns", "k", "v")
	if err := s.Delete("ns", "k"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", "k", "", false)
	if err := s.Delete("ns", "k"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
}

// TestNamespaceIsolation checks that no byte of a name acts as a separator
// or wildcard.
func TestNamespaceIsolation(t *testing.T) {
	pairs := [][2]string{
		{"a:b", "c"}, {"a", "b:c"},
		{"a/b", "c"}, {"a", "b/c"},
		{"a\x00b", "c"}, {"a", "b\x00c"},
		{"%", "k"}, {"_", "k"}, {"x", "%"}, {"x", "_"}, {"x", "k"},
		{"*", "k"}, {"?", "k"}, {"[a]", "k"}, {"a", "k"},
		{"a'", "k"}, {`a"`, "k"}, {"a;--", "k"},
	}
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		for i, p := range pairs {
			mustSet(t, s, p[0], p[1], fmt.Sprint(i))
		}
		check := func(deleted map[int]bool) {
			t.Helper()
			for i, p := range pairs {
				want, ok := fmt.Sprint(i), true
				if deleted[i] {
					want, ok = "", false
				}
				wantGet(t, s, p[0], p[1], want, ok)
			}
		}
		check(nil)
		// Each List sees only its own namespace.
		for _, ns := range []string{"a", "%", "_", "x"} {
			m, err := s.List(ns)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range pairs {
				if p[0] != ns {
					if _, ok := m[p[1]]; ok && m[p[1]] == fmt.Sprint(i) {
						t.Errorf("List(%q) holds %q of namespace %q", ns, p[1], p[0])
					}
				}
			}
		}
		// Deleting "%" and "_" namespaces and the "a" namespace removes
		// exactly their keys.
		deleted := map[int]bool{}
		for _, ns := range []string{"%", "_", "a"} {
			if err := s.DeleteNamespace(ns); err != nil {
				t.Fatal(err)
			}
			for i, p := range pairs {
				if p[0] == ns {
					deleted[i] = true
				}
			}
			check(deleted)
		}
		if err := s.Delete("x", "%"); err != nil {
			t.Fatal(err)
		}
		deleted[8] = true
		check(deleted)
	})
}

func TestDeleteExpired(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	const expired, live = 1000, 10
	for i := range expired {
		if err := s.SetWithTTL("ns", fmt.Sprint("e", i), "v", time.Duration(i+1)*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	for i := range live {
		if err := s.SetWithTTL("ns", fmt.Sprint("l", i), "v", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(t, s, "ns", "forever", "v")

	n, err := s.DeleteExpired(context.Background())
	if n != 0 || err != nil {
		t.Errorf("DeleteExpired before expiry = %d, %v; want 0, nil", n, err)
	}
	clk.Advance(expired * time.Millisecond)
	n, err = s.DeleteExpired(context.Background())
	if n != expired || err != nil {
		t.Errorf("DeleteExpired = %d, %v; want %d, nil", n, err, expired)
	}
	var rows int
	if err := sqlDB(t, path).QueryRow(`SELECT count(*) FROM operational_state`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != live+1 {
		t.Errorf("rows after sweep = %d; want %d", rows, live+1)
	}
	if st := s.CacheStats(); st.Entries != live+1 {
		t.Errorf("cache entries after sweep = %d; want %d (swept keys evicted)", st.Entries, live+1)
	}
	n, err = s.DeleteExpired(context.Background())
	if n != 0 || err != nil {
		t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.DeleteExpired(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteExpired(canceled) = %v; want context.Canceled", err)
	}
}

// TestDeleteExpiredShared checks that concurrent calls share one run and
// together report each deleted row once per run.
func TestDeleteExpiredShared(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: clk.Now})
	const rows = 3000
	for i := range rows {
		if err := s.SetWithTTL("ns", fmt.Sprint(i), "v", time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Second)
	var wg sync.WaitGroup
	counts := make([]int64, 4)
	for i := range counts {
		wg.Go(func() {
			n, err := s.DeleteExpired(context.Background())
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	// Callers joined one run or ran after it (finding nothing): the
	// largest count is all the rows, and no count is in between.
	var maxN int64
	for _, n := range counts {
		maxN = max(maxN, n)
		if n != 0 && n != rows {
			t.Errorf("DeleteExpired counts = %v; want each %d or 0", counts, rows)
		}
	}
	if maxN != rows {
		t.Errorf("DeleteExpired counts = %v; want one of %d", counts, rows)
	}
}

func TestBackgroundSweeper(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	for i := range 10 {
		if err := s.SetWithTTL("ns", fmt.Sprint(i), "v", time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	clk.Advance(time.Second)
	db := sqlDB(t, path)
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM operational_state`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	const interval = 300 * time.Millisecond
	start := time.Now()
	mustOpen(t, path, opstate.Options{Clock: clk.Now, SweepInterval: interval})
	// The first sweep runs one interval after open, not at open.
	if n := count(); n != 10 && time.Since(start) < interval {
		t.Errorf("rows right after open = %d; want 10 (no sweep at open)", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("background sweeper left %d expired rows", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < interval {
		t.Errorf("first sweep after %v; want no earlier than %v", d, interval)
	}
}

func TestRoundTripBytes(t *testing.T) {
	big := strings.Repeat("\x00\xff\xfeopstate", 3<<20/10)
	cases := []struct{ name, ns, key, value string }{
		{"empty value", "ns", "k", ""},
		{"nul", "n\x00s", "k\x00", "v\x00\x00"},
		{"invalid utf8", "\xff\xfe", "\xc3\x28", "\xa0\xa1"},
		{"unicode", "名前", "ключ", "🙂"},
		{"quotes", `'";`, "'; DROP TABLE operational_state; --", `"'\`},
		{"large", "ns", "big", big},
	}
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		for _, c := range cases {
			mustSet(t, s, c.ns, c.key, c.value)
			wantGet(t, s, c.ns, c.key, c.value, true)
			m, err := s.List(c.ns)
			if err != nil || m[c.key] != c.value {
				t.Errorf("%s: List(%q)[%q] = %.20q, %v", c.name, c.ns, c.key, m[c.key], err)
			}
		}
		s.Close()
		s = mustOpen(t, path, opts)
		for _, c := range cases {
			wantGet(t, s, c.ns, c.key, c.value, true)
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "ns", "k", "old")
	calls := []struct {
		name string
		err  error
		want error
	}{
		{"Set empty ns", s.Set("", "k", "v"), opstate.ErrEmptyName},
		{"Set empty key", s.Set("ns", "", "v"), opstate.ErrEmptyName},
		{"SetWithTTL empty key", s.SetWithTTL("ns", "", "v", time.Hour), opstate.ErrEmptyName},
		{"SetWithTTL zero ttl", s.SetWithTTL("ns", "k", "new", 0), opstate.ErrInvalidTTL},
		{"SetWithTTL negative ttl", s.SetWithTTL("ns", "k", "new", -time.Second), opstate.ErrInvalidTTL},
		{"Delete empty ns", s.Delete("", "k"), opstate.ErrEmptyName},
		{"Delete empty key", s.Delete("ns", ""), opstate.ErrEmptyName},
		{"DeleteNamespace empty", s.DeleteNamespace(""), opstate.ErrEmptyName},
	}
	for _, c := range calls {
		if !errors.Is(c.err, c.want) || !strings.HasPrefix(c.err.Error(), "opstate: ") {
			t.Errorf("%s = %v; want %v", c.name, c.err, c.want)
		}
	}
	wantGet(t, s, "ns", "k", "old", true)
	if v, err := s.Get("", ""); v != "" || !errors.Is(err, opstate.ErrEmptyName) {
		t.Errorf("Get(\"\", \"\") = %q, %v; want \"\", ErrEmptyName", v, err)
	}
	if m, err := s.List(""); m == nil || !errors.Is(err, opstate.ErrEmptyName) {
		t.Errorf("List(\"\") = %v, %v; want empty map, ErrEmptyName", m, err)
	}
	s.Close()
	s = mustOpen(t, path, opstate.Options{})
	m, err := s.List("ns")
	if err != nil || len(m) != 1 || m["k"] != "old" {
		t.Errorf("after bad input and reopen, List = %v, %v; want only k=old", m, err)
	}
}

func TestClosed(t *testing.T) {
	s, err := opstate.Open(dbPath(t), opstate.Options{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	_, getErr := s.Get("ns", "k")
	_, _, lookupErr := s.Lookup("ns", "k")
	_, listErr := s.List("ns")
	_, nsErr := s.Namespaces()
	_, sweepErr := s.DeleteExpired(context.Background())
	for name, err := range map[string]error{
		"Get": getErr, "Lookup": lookupErr, "List": listErr, "Namespaces": nsErr, "DeleteExpired": sweepErr,
		"Set": s.Set("ns", "k", "v"), "SetWithTTL": s.SetWithTTL("ns", "k", "v", time.Second),
		"Delete": s.Delete("ns", "k"), "DeleteNamespace": s.DeleteNamespace("ns"),
		// Closed comes before bad input.
		"Set with an empty key": s.Set("ns", "", "v"), "SetWithTTL with ttl 0": s.SetWithTTL("ns", "k", "v", 0),
		"Delete with an empty namespace": s.Delete("", "k"), "DeleteNamespace(\"\")": s.DeleteNamespace(""),
		"List(\"\")":      func() error { _, err := s.List(""); return err }(),
		"Get(\"\", \"\")": func() error { _, err := s.Get("", ""); return err }(),
	} {
		if !errors.Is(err, opstate.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}

// TestFailedWriteNeverServed holds the write lock from another connection
// so that writes time out, and checks that the old value stays served,
// from the cache and from SQLite.
func TestFailedWriteNeverServed(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		opts.BusyTimeout = 50 * time.Millisecond
		s := mustOpen(t, path, opts)
		mustSet(t, s, "ns", "k", "old")
		mustSet(t, s, "ns", "gone", "still here")
		wantGet(t, s, "ns", "k", "old", true)

		ctx := context.Background()
		conn, err := sqlDB(t, path).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		writes := map[string]error{
			"Set":             s.Set("ns", "k", "new"),
			"SetWithTTL":      s.SetWithTTL("ns", "k", "new", time.Hour),
			"Delete":          s.Delete("ns", "gone"),
			"DeleteNamespace": s.DeleteNamespace("ns"),
		}
		for name, err := range writes {
			if !errors.Is(err, opstate.ErrBusy) {
				t.Errorf("%s under a foreign write lock = %v; want ErrBusy", name, err)
			}
		}
		// Reads are served while the lock is held.
		wantGet(t, s, "ns", "k", "old", true)
		wantGet(t, s, "ns", "gone", "still here", true)
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "ns", "k", "old", true)
		wantGet(t, s, "ns", "gone", "still here", true)
	})
}

// TestRacingSetsAgree races Sets on one key and checks that the cache ends
// up holding what SQLite holds.
func TestRacingSetsAgree(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	db := sqlDB(t, path)
	for round := range 50 {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				if err := s.Set("ns", "k", fmt.Sprintf("r%d-g%d", round, g)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var onDisk string
		if err := db.QueryRow(`SELECT value FROM operational_state WHERE namespace='ns' AND key='k'`).Scan(&onDisk); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "ns", "k", onDisk, true)
	}
}

// TestReadAfterWrite checks per-key linearizability against a writer: once
// Set(i) has returned, no Get that starts later returns an older value,
// including Gets that miss the cache because a tiny budget keeps evicting.
func TestReadAfterWrite(t *testing.T) {
	for _, budget := range []int64{0, 600, -1} {
		t.Run(fmt.Sprint("budget=", budget), func(t *testing.T) {
			s := mustOpen(t, dbPath(t), opstate.Options{CacheBytes: budget})
			var acked atomic.Int64
			acked.Store(-1)
			const writes = 300
			done := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-done:
							return
						default:
						}
						floor := acked.Load()
						v, err := s.Get("ns", "k")
						if err != nil {
							t.Error(err)
							return
						}
						var got int64 = -1
						if v != "" {
							fmt.Sscan(v, &got)
						}
						if got < floor {
							t.Errorf("Get = %d after Set(%d) returned", got, floor)
							return
						}
						// Churn other keys so that k is evicted.
						s.Get("ns", fmt.Sprint("other", floor%7))
					}
				})
			}
			for i := range int64(writes) {
				if err := s.Set("ns", "k", fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
				acked.Store(i)
				if i%3 == 0 {
					s.Set("ns", fmt.Sprint("other", i%7), strings.Repeat("x", 100))
				}
			}
			close(done)
			wg.Wait()
		})
	}
}

// TestMemoryBound writes many namespaces and large values through a small
// budget and checks that the cache stays within it while every key is
// still served, from SQLite once evicted.
func TestMemoryBound(t *testing.T) {
	const budget = 64 << 10
	s := mustOpen(t, dbPath(t), opstate.Options{CacheBytes: budget})
	val := strings.Repeat("v", 1000)
	for i := range 500 {
		mustSet(t, s, fmt.Sprint("conversation-", i), "pref", fmt.Sprint(i, val))
		if st := s.CacheStats(); st.Bytes > budget {
			t.Fatalf("after %d namespaces cache holds %d bytes; budget %d", i+1, st.Bytes, budget)
		}
	}
	mustSet(t, s, "big", "value", strings.Repeat("b", budget)) // larger than the budget
	for i := range 500 {
		wantGet(t, s, fmt.Sprint("conversation-", i), "pref", fmt.Sprint(i, val), true)
	}
	wantGet(t, s, "big", "value", strings.Repeat("b", budget), true)
	st := s.CacheStats()
	if st.Bytes > budget || st.Evictions == 0 || st.Entries == 0 {
		t.Errorf("CacheStats = %+v; want within %d bytes, some evictions, some entries", st, budget)
	}
}

// TestNegativeCaching checks that a hot lookup of an absent key reaches
// SQLite once.
func TestNegativeCaching(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{})
	for range 1000 {
		wantGet(t, s, "flags", "absent", "", false)
	}
	if n := s.Stats().Misses; n != 1 {
		t.Errorf("1000 Gets of an absent key read SQLite %d times; want 1", n)
	}
	mustSet(t, s, "flags", "absent", "now present")
	wantGet(t, s, "flags", "absent", "now present", true)
	if err := s.Delete("flags", "absent"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "flags", "absent", "", false)
	if n := s.Stats().Misses; n != 1 {
		t.Errorf("writes then Gets read SQLite %d times in all; want 1", n)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("mode 0600", func(t *testing.T) {
		path := filepath.Join(dir, "new.db")
		s := mustOpen(t, path, opstate.Options{})
		mustSet(t, s, "ns", "k", "v")
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s mode = %v; want 0600", filepath.Base(p), perm)
			}
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(dir, "missing", "x.db")
		if _, err := opstate.NewStore(path); err == nil || !strings.HasPrefix(err.Error(), "opstate: ") {
			t.Errorf("NewStore(%q) = %v; want an opstate error", path, err)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("NewStore created %s", filepath.Dir(path))
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := opstate.NewStore(dir); !errors.Is(err, opstate.ErrNotDatabase) {
			t.Errorf("NewStore(dir) = %v; want ErrNotDatabase", err)
		}
	})
	for name, content := range map[string][]byte{
		"text":      []byte("feature flags: dark_mode=on\n"),
		"short":     []byte("SQLite"),
		"bad magic": bytes.Repeat([]byte{0xAB}, 4096),
	} {
		t.Run("not sqlite: "+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := opstate.NewStore(path); !errors.Is(err, opstate.ErrNotDatabase) {
				t.Errorf("NewStore(%s) = %v; want ErrNotDatabase", name, err)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, content) {
				t.Errorf("NewStore changed the %s file", name)
			}
			if _, err := os.Stat(path + "-wal"); err == nil {
				t.Errorf("NewStore left a -wal file beside the %s file", name)
			}
		})
	}
}

// TestLegacyFiles opens files written by the SQLite-only opstate, with and
// without expires_at, and checks that nothing is lost.
func TestLegacyFiles(t *testing.T) {
	for _, withExpiry := range []bool{false, true} {
		t.Run(fmt.Sprint("expires_at=", withExpiry), func(t *testing.T) {
			path := dbPath(t)
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			stmts := []string{
				`CREATE TABLE operational_state (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (namespace, key))`,
				`INSERT INTO operational_state VALUES ('poller', 'hwm', '12345', '2026-03-07T10:00:00Z')`,
				`INSERT INTO operational_state VALUES ('flags', 'dark_mode', 'on', '2026-03-07T10:00:00Z')`,
			}
			if withExpiry {
				stmts = append(stmts,
					`ALTER TABLE operational_state ADD COLUMN expires_at TEXT`,
					`INSERT INTO operational_state VALUES ('sess', 'live', 'a', '2026-03-07T10:00:00Z', '2026-03-07T10:00:05Z')`,
					`INSERT INTO operational_state VALUES ('sess', 'dead', 'b', '2026-03-07T10:00:00Z', '2026-03-07T09:59:59Z')`,
				)
			}
			for _, q := range stmts {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()

			clk := newClock() // 2026-03-07T10:00:00Z
			s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
			wantGet(t, s, "poller", "hwm", "12345", true)
			wantGet(t, s, "flags", "dark_mode", "on", true)
			if withExpiry {
				wantGet(t, s, "sess", "live", "a", true)
				wantGet(t, s, "sess", "dead", "", false)
				clk.Advance(4999 * time.Millisecond)
				wantGet(t, s, "sess", "live", "a", true)
				clk.Advance(time.Millisecond)
				wantGet(t, s, "sess", "live", "", false)
			}
			mustSet(t, s, "flags", "new", "x")
			s.Close()
			// Opening again migrates nothing and loses nothing.
			s = mustOpen(t, path, opstate.Options{})
			wantGet(t, s, "poller", "hwm", "12345", true)
			wantGet(t, s, "flags", "new", "x", true)
		})
	}
}

func TestNamespaces(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: clk.Now})
	mustSet(t, s, "b", "1", "x")
	mustSet(t, s, "b", "2", "x")
	mustSet(t, s, "a", "1", "x")
	if err := s.SetWithTTL("c", "1", "x", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	got, err := s.Namespaces()
	want := []opstate.Namespace{{Name: "a", Keys: 1}, {Name: "b", Keys: 2}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Namespaces() = %v, %v; want %v", got, err, want)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []opstate.Options{{BusyTimeout: -1}, {Durability: 7}} {
		if _, err := opstate.Open(dbPath(t), o); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Errorf("Open(%+v) = %v; want ErrInvalidOption", o, err)
		}
	}
}

func TestDurabilityFull(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Durability: opstate.DurabilityFull})
	mustSet(t, s, "ns", "k", "v")
	s.Close()
	s = mustOpen(t, path, opstate.Options{})
	wantGet(t, s, "ns", "k", "v", true)
}

// TestOperatorExpiryFormats edits expires_at by hand, in every form an
// operator might write, and checks that reads, Namespaces and the sweep all
// agree on what it means.
func TestOperatorExpiryFormats(t *testing.T) {
	cases := []struct {
		expires string
		live    bool
	}{
		{"2026-03-07 12:00:00", true},
		{"2026-03-07T12:00:00Z", true},
		{"2026-03-07T10:00:00.001Z", true},
		{"2026-03-07T13:00:00+02:00", true},  // 11:00Z
		{"2026-03-07T11:00:00+02:00", false}, // 09:00Z
		{"2026-03-07 09:59:59.999", false},
		{"2026-03-07T10:00:00Z", false}, // expiry is exclusive: now is past it
		{"garbage", true},               // no time at all: never expires
		{"1", false},                    // SQLite reads a number as a Julian day: long past
	}
	for _, c := range cases {
		t.Run(c.expires, func(t *testing.T) {
			clk := newClock() // 2026-03-07T10:00:00Z
			path := dbPath(t)
			s := mustOpen(t, path, opstate.Options{Clock: clk.Now, CacheBytes: -1})
			mustSet(t, s, "ns", "k", "v")
			if _, err := sqlDB(t, path).Exec(`UPDATE operational_state SET expires_at = ?`, c.expires); err != nil {
				t.Fatal(err)
			}
			want, wantKeys, wantSwept := "", 0, int64(1)
			if c.live {
				want, wantKeys, wantSwept = "v", 1, 0
			}
			wantGet(t, s, "ns", "k", want, c.live)
			if m, err := s.List("ns"); err != nil || len(m) != wantKeys {
				t.Errorf("List = %v, %v; want %d keys", m, err, wantKeys)
			}
			if nss, err := s.Namespaces(); err != nil || len(nss) != wantKeys {
				t.Errorf("Namespaces = %v, %v; want %d", nss, err, wantKeys)
			}
			if n, err := s.DeleteExpired(context.Background()); n != wantSwept || err != nil {
				t.Errorf("DeleteExpired = %d, %v; want %d", n, err, wantSwept)
			}
			wantGet(t, s, "ns", "k", want, c.live)
		})
	}
}

// TestWALStaysBounded writes 8,000 new keys of 1 KiB values from one
// goroutine without pause (the first of sustainedLoads, about 35,000
// frames of log), and checks that the -wal file never outgrows SQLite's
// backstop of 4096 frames (walBackstop), past which a commit would run a
// checkpoint itself: the background checkpoints must complete, and the
// log start over, while the writes keep coming.
func TestWALStaysBounded(t *testing.T) {
	r := sustainedLoads[0].run(t, dbPath(t), 1, 0)
	if r.walMax > walBackstop {
		t.Errorf("the -wal file grew to %d bytes (%d complete background checkpoints); want at most %d, 4096 frames", r.walMax, r.checkpoints, walBackstop)
	}
	t.Logf("largest -wal file %d bytes; %d complete checkpoints, which held writes off for up to %v", r.walMax, r.checkpoints, r.heldMax)
}

// TestBadWriteFailsAlone makes one key unwritable (an operator's trigger
// refuses it) while writers keep writing other keys at once, so that their
// writes share transactions with the refused ones: only the refused write
// may fail.
func TestBadWriteFailsAlone(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	if _, err := sqlDB(t, path).Exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON operational_state
		WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned key'); END`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				if g == 0 {
					if err := s.Set("ns", "poison", "x"); err == nil {
						t.Error("Set(poison) = nil; want the trigger's error")
					}
					continue
				}
				if err := s.Set("ns", fmt.Sprint(g, "-", i), "v"); err != nil {
					t.Errorf("Set(%d-%d) = %v; want nil (only the poisoned key fails)", g, i, err)
				}
			}
		})
	}
	wg.Wait()
	m, err := s.List("ns")
	if err != nil || len(m) != 7*40 {
		t.Errorf("List = %d keys, %v; want %d", len(m), err, 7*40)
	}
	wantGet(t, s, "ns", "poison", "", false)
	batches, writes := s.Batches()
	t.Logf("%d writes in %d transactions", writes, batches)
}
