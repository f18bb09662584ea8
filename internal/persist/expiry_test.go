package persist_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

func TestDeleteExpired(t *testing.T) {
	db := mustOpen(t, "")
	// Written out of expiry order, across namespaces.
	write(t, db,
		row{"b", "t-2", "", t0 - 2*ms},
		row{"a", "never", "", 0},
		row{"a", "t-1", "", t0 - ms},
		row{"c", "t0", "", t0},
		row{"a", "t-4", "", t0 - 4*ms},
		row{"b", "t+1", "", t0 + ms},
		row{"c", "t-3", "", t0 - 3*ms},
	)
	steps := []struct {
		limit int
		want  []persist.Key // sorted by key
	}{
		{0, nil},
		{2, []persist.Key{{Namespace: "c", Key: "t-3"}, {Namespace: "a", Key: "t-4"}}},
		{1, []persist.Key{{Namespace: "b", Key: "t-2"}}},
		{10, []persist.Key{{Namespace: "a", Key: "t-1"}, {Namespace: "c", Key: "t0"}}},
		{10, nil},
	}
	for i, s := range steps {
		got := sweep(t, db, t0, s.limit)
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: DeleteExpired(t0, %d) = %v; want %v", i, s.limit, got, s.want)
		}
		for _, k := range got {
			checkGet(t, db, k.Namespace, k.Key, nil)
		}
	}
	checkGet(t, db, "a", "never", &persist.Row{})
	checkGet(t, db, "b", "t+1", &persist.Row{ExpiresAt: t0 + ms})

	// A sweep that fails deletes nothing and reports nothing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if keys, err := db.DeleteExpired(ctx, t0+time.Hour.Milliseconds(), 10); err == nil || keys != nil {
		t.Errorf("DeleteExpired on a cancelled context = %v, %v; want no keys and an error", keys, err)
	}
	checkGet(t, db, "b", "t+1", &persist.Row{ExpiresAt: t0 + ms})
	if got, want := sweep(t, db, t0+time.Hour.Milliseconds(), 10), []persist.Key{{Namespace: "b", Key: "t+1"}}; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired(t0+1h, 10) = %v; want %v", got, want)
	}
}

// TestSweepOrderLarge checks that a limited sweep over many rows takes the
// earliest expiries, whatever order they were written in.
func TestSweepOrderLarge(t *testing.T) {
	db := mustOpen(t, "")
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []row
	var expiries []int64
	for i, p := range rng.Perm(500) {
		exp := t0 - int64(p+1)*ms
		rows = append(rows, row{fmt.Sprint("ns", i%7), fmt.Sprint("k", i), "v", exp})
		expiries = append(expiries, exp)
		rows = append(rows, row{"live", fmt.Sprint("k", i), "v", t0 + int64(p+1)*ms})
	}
	write(t, db, rows...)
	slices.Sort(expiries)
	var got []int64
	for _, k := range sweep(t, db, t0, 50) {
		for _, r := range rows {
			if r.ns == k.Namespace && r.key == k.Key {
				got = append(got, r.exp)
			}
		}
	}
	slices.Sort(got)
	if want := expiries[:50]; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired(t0, 50) took expiries %v…; want the 50 earliest %v…", got[:min(3, len(got))], want[:3])
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{t0, "2026-03-07T10:00:00.000Z"},
		{t0 + 1, "2026-03-07T10:00:00.001Z"},
		{0, "1970-01-01T00:00:00.000Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC).UnixMilli(), "1999-12-31T23:59:59.999Z"},
		{time.Date(2026, 3, 7, 12, 0, 0, 0, time.FixedZone("+02", 2*3600)).UnixMilli(), "2026-03-07T10:00:00.000Z"},
		{persist.EarliestMillis, "0000-01-01T00:00:00.000Z"},
		{persist.LatestMillis, "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		if got := persist.FormatTime(tt.ms); got != tt.want {
			t.Errorf("FormatTime(%d) = %q; want %q", tt.ms, got, tt.want)
		}
	}

	// Round trip, fixed width, and text order is time order, over the
	// whole range.
	rng := rand.New(rand.NewPCG(8, 9))
	lo, hi := int64(persist.EarliestMillis), int64(persist.LatestMillis)
	var sample []int64
	for range 2000 {
		n := lo + rng.Int64N(hi-lo-2)
		sample = append(sample, n, n+rng.Int64N(3)) // near neighbours
	}
	sample = append(sample, lo, hi)
	for _, n := range sample {
		s := persist.FormatTime(n)
		if len(s) != 24 {
			t.Errorf("len(FormatTime(%d)) = %d (%q); want 24", n, len(s), s)
		}
		back, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || back.UnixMilli() != n {
			t.Errorf("time.Parse(FormatTime(%d) = %q) = %d, %v; want %d", n, s, back.UnixMilli(), err, n)
		}
	}
	byText := slices.Clone(sample)
	sort.SliceStable(byText, func(i, j int) bool { return persist.FormatTime(byText[i]) < persist.FormatTime(byText[j]) })
	byTime := slices.Clone(sample)
	slices.Sort(byTime)
	for i := range byText {
		if byText[i] != byTime[i] {
			t.Fatalf("text order and time order differ at %d: %q vs %q", i, persist.FormatTime(byText[i]), persist.FormatTime(byTime[i]))
		}
	}
}

// TestStoredTimeForms writes expires_at by hand in the forms SQLite reads
// (as an operator with the sqlite3 shell, or an earlier opstate, would)
// and checks that Get, List, Namespaces and the sweep all give each the
// same meaning.
func TestStoredTimeForms(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	tests := []struct {
		stored string
		want   int64 // Row.ExpiresAt; 0 for never
	}{
		{"2026-03-07T10:00:00.000Z", t0},
		{"2026-03-07T10:00:00Z", t0},
		{"2026-03-07 10:00:00", t0},
		{"2026-03-07 10:00:00.250", t0 + 250*ms},
		{"2026-03-07T10:00:00.5Z", t0 + 500*ms},
		{"2026-03-07T12:00:00+02:00", t0},
		{"2026-03-07T05:30:00-04:30", t0},
		{"2026-03-07T10:00", t0},
		{"2099-01-01T00:00:00Z", at("2099-01-01T00:00:00Z")},
		{"2020-01-01T00:00:00Z", at("2020-01-01T00:00:00Z")},
		{"garbage", 0},
		{"", 0},
		{"2026-13-45T99:99:99Z", 0},
		// The ends of the range, and the epoch, which 0 ("never") cannot
		// hold: it reads a millisecond early.
		{"0000-01-01T00:00:00.000Z", persist.EarliestMillis},
		{"9999-12-31T23:59:59.999Z", persist.LatestMillis},
		{"1970-01-01T00:00:00.000Z", -1},
		{"10000-01-01T00:00:00.000Z", 0},
	}
	for _, tt := range tests {
		t.Run(tt.stored, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, row{"ns", "k", "v", 0})
			if _, err := rawDB(t, db.Path()).Exec(`UPDATE operational_state SET expires_at = ?`, tt.stored); err != nil {
				t.Fatal(err)
			}
			checkGet(t, db, "ns", "k", &persist.Row{Value: "v", ExpiresAt: tt.want})

			// Just before the expiry the row is live everywhere; at it,
			// nowhere. A row that never expires is live at any time.
			for _, now := range []int64{tt.want - 1, tt.want} {
				if tt.want == 0 {
					now = at("2200-01-01T00:00:00Z")
				}
				live := tt.want == 0 || now < tt.want
				if _, got := list(t, db, "ns", now)["k"]; got != live {
					t.Errorf("List(now=%s) has the row: %v; want %v", time.UnixMilli(now).UTC(), got, live)
				}
				if tt.want == -1 && now == -1 {
					// Namespaces and the sweep judge in SQL, where the epoch
					// is no special case: they see the row a millisecond
					// longer than Get and List, never shorter.
					live = true
				}
				counted := len(namespaces(t, db, now)) == 1
				if counted != live {
					t.Errorf("Namespaces(now=%s) counts the row: %v; want %v", time.UnixMilli(now).UTC(), counted, live)
				}
				// (The first now never sweeps a correct row, so the second
				// still finds it.)
				if keys := sweep(t, db, now, 10); (len(keys) == 1) == live {
					t.Errorf("DeleteExpired(now=%s) = %v; want the row swept: %v", time.UnixMilli(now).UTC(), keys, !live)
				}
			}
		})
	}
}

// sweepQuery is the sweep's statement, as persist prepares it. Keep the two
// in step.
// sweepQuery is the statement the sweep runs.
const sweepQuery = persist.SweepSQL

func TestSweepUsesIndex(t *testing.T) {
	db := mustOpen(t, "")
	var rows []row
	for i := range 200 {
		exp := int64(0)
		if i%2 == 0 {
			exp = t0 + int64(i)*ms
		}
		rows = append(rows, row{"ns", fmt.Sprint("k", i), "v", exp})
	}
	write(t, db, rows...)
	// No ANALYZE: opstate never runs it, so this is the plan it gets.
	raw := rawDB(t, db.Path())
	plan, err := raw.Query(`EXPLAIN QUERY PLAN `+sweepQuery, persist.FormatTime(t0), 10)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN of the sweep = %v", err)
	}
	defer plan.Close()
	var details []string
	for plan.Next() {
		var id, parent, notUsed int
		var detail string
		if err := plan.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		details = append(details, detail)
	}
	if err := plan.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(details, "\n")
	t.Logf("plan:\n%s", all)
	if !strings.Contains(all, "USING INDEX operational_state_expiry") && !strings.Contains(all, "USING COVERING INDEX operational_state_expiry") {
		t.Errorf("the sweep's plan does not use operational_state_expiry:\n%s", all)
	}
	if strings.Contains(all, "TEMP B-TREE") {
		t.Errorf("the sweep's plan sorts in a temporary b-tree:\n%s", all)
	}
}
