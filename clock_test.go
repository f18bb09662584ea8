package opstate_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/storage"
)

// wallClock is a settable Options.Clock that holds any time.Time, the
// zero time and years far outside Unix nanoseconds' range included.
type wallClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *wallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *wallClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestClockEdges runs TTLs on clocks where test clocks and broken hosts
// start: the zero time.Time (the year 1), just before and at the Unix
// epoch, before 1678 and after 2262 (beyond Unix nanoseconds), and an hour
// before the end of the year 9999. Everywhere a key set with a one-second
// TTL is live until the second has passed and then missing, from the cache
// and from SQLite, DeleteExpired removes it, and an hour later it is still
// missing.
func TestClockEdges(t *testing.T) {
	starts := []time.Time{
		{},
		time.Unix(-1, 500_000_000), // 1969-12-31T23:59:59.5Z
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Date(1600, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2300, 6, 1, 0, 0, 0, 123_456_789, time.UTC),
		time.Date(9999, 12, 31, 22, 59, 59, 0, time.UTC),
	}
	for _, start := range starts {
		t.Run(start.Format(time.RFC3339Nano), func(t *testing.T) {
			cacheModes(t, func(t *testing.T, opts opstate.Options) {
				clk := &wallClock{t: start}
				opts.Clock = clk.Now
				s := mustOpen(t, dbPath(t), opts)
				if err := s.SetWithTTL("ns", "k", "v", time.Second); err != nil {
					t.Fatal(err)
				}
				mustSet(t, s, "ns", "forever", "f")
				clk.Advance(time.Second - time.Millisecond)
				wantGet(t, s, "ns", "k", "v", true)
				if m, err := s.List("ns"); err != nil || len(m) != 2 {
					t.Errorf("List before the expiry = %v, %v; want both keys", m, err)
				}
				clk.Advance(2 * time.Millisecond)
				wantGet(t, s, "ns", "k", "", false)
				if m, err := s.List("ns"); err != nil || len(m) != 1 {
					t.Errorf("List after the expiry = %v, %v; want only forever", m, err)
				}
				if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
					t.Errorf("DeleteExpired = %d, %v; want 1, nil", n, err)
				}
				clk.Advance(time.Hour)
				wantGet(t, s, "ns", "k", "", false)
				wantGet(t, s, "ns", "forever", "f", true)
				if nss, err := s.Namespaces(); err != nil || len(nss) != 1 || nss[0].Keys != 1 {
					t.Errorf("Namespaces = %v, %v; want ns with 1 key", nss, err)
				}
			})
		})
	}
}

// TestExpiryArithmetic checks expiry at the edges of its types: the
// result is the first whole millisecond at or after start+ttl, capped at
// the last millisecond of the year 9999, never 0 (which means "never"),
// for any start and any positive ttl.
func TestExpiryArithmetic(t *testing.T) {
	ms := func(tm time.Time) int64 { return tm.UnixMilli() }
	tests := []struct {
		start time.Time
		ttl   time.Duration
		want  int64
	}{
		{time.Unix(100, 0), time.Millisecond, 100_001},
		{time.Unix(100, 0), time.Nanosecond, 100_001},
		{time.Unix(100, 500_000), 600 * time.Microsecond, 100_002}, // 100.0011 s
		{time.Unix(100, 500_000), 500 * time.Microsecond, 100_001}, // exactly 100.001 s
		{time.Unix(0, -1_000_000), time.Millisecond, 1},            // the epoch itself: a millisecond later
		{time.Unix(0, -1), time.Nanosecond, 1},
		{time.Unix(-2, 0), time.Second, -1000},
		{time.Time{}, time.Second, ms(time.Time{}) + 1000},
		{time.Time{}, math.MaxInt64, ms(time.Time{}) + math.MaxInt64/int64(time.Millisecond) + 1},
		{time.Unix(0, 0), math.MaxInt64, math.MaxInt64/int64(time.Millisecond) + 1},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Hour, storage.LatestMillis},
		{time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), time.Second, storage.LatestMillis},
		{time.Date(-300, 1, 1, 0, 0, 0, 0, time.UTC), time.Second, storage.EarliestMillis + 1000},
		{time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, time.UTC), math.MaxInt64,
			ms(time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, time.UTC)) + math.MaxInt64/int64(time.Millisecond) + 2},
	}
	for _, tt := range tests {
		if got := opstate.Expiry(tt.start, tt.ttl); got != tt.want {
			t.Errorf("expiry(%v, %v) = %d; want %d", tt.start, tt.ttl, got, tt.want)
		}
	}
	// Against big-number arithmetic where nothing is clamped.
	for _, start := range []time.Time{{}, time.Unix(-1, 1), time.Unix(0, 999_999), time.Date(1500, 2, 3, 4, 5, 6, 7, time.UTC)} {
		for _, ttl := range []time.Duration{1, 999_999, 1_000_000, 1_000_001, time.Hour + 1, math.MaxInt64} {
			exact := start.Add(ttl)
			want := exact.Truncate(0).UnixMilli()
			if !time.UnixMilli(want).Equal(exact) && time.UnixMilli(want).Before(exact) {
				want++
			}
			if want == 0 {
				want = 1
			}
			if got := opstate.Expiry(start, ttl); got != want {
				t.Errorf("expiry(%v, %v) = %d; want %d", start, ttl, got, want)
			}
		}
	}
}

// TestClockLeavesRange sets keys while the clock is inside the years
// 0000-9999 or outside them, and then moves the clock across the range's
// end: to the year 12000 (and to the last time.Time) after a key set in
// 2026, and from the years -300 and -5000 (where the clock reads as
// 0000-01-01) to 2026. The key must then be
// expired for every reader — Get from the cache and from SQLite, List,
// Namespaces — and DeleteExpired must delete it, while a key without TTL
// lives on. A clock read without clamping would format as text SQLite's
// date functions cannot read: the sweep would never delete the row, or
// the row would never expire.
func TestClockLeavesRange(t *testing.T) {
	tests := []struct {
		name          string
		start, jumpTo time.Time
	}{
		{"2026 to 12000", time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2026 to the last time.Time", time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC), time.Unix(math.MaxInt64-62135596801, 999_999_999)},
		{"-300 to 2026", time.Date(-300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)},
		// Before 4713 BC, where SQLite's julianday() ends.
		{"-5000 to 2026", time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheModes(t, func(t *testing.T, opts opstate.Options) {
				clk := &wallClock{t: tt.start}
				opts.Clock = clk.Now
				s := mustOpen(t, dbPath(t), opts)
				if err := s.SetWithTTL("ns", "k", "v", time.Hour); err != nil {
					t.Fatal(err)
				}
				mustSet(t, s, "ns", "forever", "f")
				wantGet(t, s, "ns", "k", "v", true)
				clk.t = tt.jumpTo
				wantGet(t, s, "ns", "k", "", false)
				if m, err := s.List("ns"); err != nil || len(m) != 1 {
					t.Errorf("List after the jump = %v, %v; want only forever", m, err)
				}
				if nss, err := s.Namespaces(); err != nil || len(nss) != 1 || nss[0].Keys != 1 {
					t.Errorf("Namespaces after the jump = %v, %v; want ns with 1 key", nss, err)
				}
				if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
					t.Errorf("DeleteExpired after the jump = %d, %v; want 1, nil", n, err)
				}
				wantGet(t, s, "ns", "forever", "f", true)
			})
		})
	}
}
