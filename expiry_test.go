package opstate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

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
