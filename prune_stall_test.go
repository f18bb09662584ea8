package opstate_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/persist"
)

// prunedBackend is the SQLite backend with its PruneHistory watched: after
// each call, which is one transaction, onPrune gets how many changes it
// deleted and how long the call took.
type prunedBackend struct {
	*persist.DB
	onPrune func(n int, took time.Duration)
}

// PruneHistory is the DB's, reported to onPrune.
func (b prunedBackend) PruneHistory(ctx context.Context, limit int) (int, error) {
	start := time.Now()
	n, err := b.DB.PruneHistory(ctx, limit)
	if err == nil {
		b.onPrune(n, time.Since(start))
	}
	return n, err
}

// largeHistory makes the database at path with namespaces namespaces
// ("p0", "p1", ...) that keep keep changes each, and changes changes
// recorded for each, interleaved (as writers to several namespaces leave
// them), written by plain SQL so that making them takes seconds.
func largeHistory(tb testing.TB, path string, namespaces, changes, keep int) {
	tb.Helper()
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range namespaces {
		if err := db.SetHistory(context.Background(), fmt.Sprint("p", i), keep); err != nil {
			db.Close()
			tb.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	_, err = sqlDB(tb, path).Exec(`INSERT INTO operational_state_history (at, namespace, key, op, after)
		WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ?1 * ?2 - 1)
		SELECT '2026-12-07 12:00:00.000', 'p' || (x % ?1), 'k' || (x / ?1 % 16), 'set', 'v' || x FROM c`,
		namespaces, changes)
	if err != nil {
		tb.Fatal(err)
	}
}

// pruneBatch is what the test and the benchmark learn of one
// PruneHistory call while Sets run: what it deleted, how long it took, and,
// right after it, how many Sets had been started and how many committed.
type pruneBatch struct {
	deleted            int
	took               time.Duration
	started, committed int64
}

// pruneRun opens a Store over the database at path with PruneHistory
// watched, runs a sweep (which prunes the history) while one writer Sets
// keys of namespace "w", which keeps no history, one after another, and
// returns each batch of the prune, the latency of every Set made while it
// ran, and the Store, open, for the caller to close.
func pruneRun(tb testing.TB, path string) (batches []pruneBatch, latencies []time.Duration, s *opstate.Store) {
	tb.Helper()
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	var started atomic.Int64
	var base uint64
	var mu sync.Mutex
	var store atomic.Pointer[opstate.Store]
	be := prunedBackend{DB: db, onPrune: func(n int, took time.Duration) {
		_, w := store.Load().Batches()
		b := pruneBatch{deleted: n, took: took, started: started.Load(), committed: int64(w - base)}
		mu.Lock()
		batches = append(batches, b)
		mu.Unlock()
	}}
	s, err = opstate.OpenBackend(be, opstate.Options{SweepInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	store.Store(s)
	_, base = s.Batches()

	done := make(chan error, 1)
	go func() {
		_, err := s.DeleteExpired(context.Background())
		done <- err
	}()
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				tb.Fatalf("DeleteExpired = %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			return batches, latencies, s
		default:
		}
		started.Add(1)
		t0 := time.Now()
		if err := s.Set("w", fmt.Sprint("k", i%64), "v"); err != nil {
			tb.Fatal(err)
		}
		latencies = append(latencies, time.Since(t0))
	}
}

// heldAcross returns, for the Sets of one writer that Sets one key after
// another, the most whole batches of the prune that any one Set waited
// across: a Set started before a batch began (by the count of Sets
// started at the end of the batch before) and not committed when it
// ended waited across it.
func heldAcross(batches []pruneBatch) int {
	most, run := 0, 0
	var prevStarted, prevCommitted int64 // before the first batch: none
	for _, b := range batches {
		if prevStarted > prevCommitted && b.committed < prevStarted {
			run++ // Set number prevStarted waited through all of b
		} else {
			run = 0
		}
		most = max(most, run)
		prevStarted, prevCommitted = b.started, b.committed
	}
	return most
}

// TestPruneDoesNotStallWriters checks that the sweeper's pruning of a
// large history (8 namespaces × 4,000 changes over a keep of 100) never
// holds a writer up for long: each PruneHistory call deletes at most
// HistoryPruneBatch changes in its own transaction, the Sets of a writer
// that writes all along commit between the batches, and no Set waits
// across more than one whole batch (counted by the Sets started and
// committed at each batch's end, not by the clock).
func TestPruneDoesNotStallWriters(t *testing.T) {
	const namespaces, changes, keep = 8, 4000, 100
	path := dbPath(t)
	largeHistory(t, path, namespaces, changes, keep)
	batches, latencies, s := pruneRun(t, path)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}()

	total := 0
	for i, b := range batches {
		total += b.deleted
		if b.deleted > opstate.HistoryPruneBatch {
			t.Errorf("prune batch %d deleted %d changes in one transaction; want at most %d", i, b.deleted, opstate.HistoryPruneBatch)
		}
	}
	if want := namespaces * (changes - keep); total != want {
		t.Fatalf("the prune deleted %d changes; want %d", total, want)
	}
	if least := batchesFor(namespaces*(changes-keep), opstate.HistoryPruneBatch); len(batches) < least {
		t.Fatalf("the prune ran %d batches; want at least %d", len(batches), least)
	}
	between := 0 // batches after which a Set had committed since the one before
	for i := 1; i < len(batches); i++ {
		if batches[i].committed > batches[i-1].committed {
			between++
		}
	}
	if between == 0 {
		t.Errorf("no Set committed between any two of the %d prune batches (%d Sets while it ran)", len(batches), len(latencies))
	}
	if n := heldAcross(batches); n > 1 {
		t.Errorf("a Set waited across %d whole prune batches; want at most 1", n)
	}
	for i := range namespaces {
		cs, err := s.History(context.Background(), fmt.Sprint("p", i), "", 0)
		if err != nil || len(cs) != keep {
			t.Fatalf("History(p%d) after the prune = %d changes, %v; want %d", i, len(cs), err, keep)
		}
	}
	t.Logf("%d batches, %d Sets while pruning, Sets committed between %d of %d batch pairs, longest wait %d whole batches",
		len(batches), len(latencies), between, len(batches)-1, heldAcross(batches))
}

// batchesFor is how many batches of at most batch it takes to delete n.
func batchesFor(n, batch int) int { return (n + batch - 1) / batch }

// TestHeldAcross checks the count TestPruneDoesNotStallWriters relies on.
func TestHeldAcross(t *testing.T) {
	cases := []struct {
		name    string
		batches []pruneBatch
		want    int
	}{
		{"no Sets", []pruneBatch{{}, {}, {}}, 0},
		{"each Set commits between batches", []pruneBatch{{started: 1, committed: 0}, {started: 2, committed: 1}, {started: 3, committed: 2}}, 0},
		{"one Set across one batch", []pruneBatch{{started: 1, committed: 0}, {started: 1, committed: 0}, {started: 2, committed: 1}}, 1},
		{"one Set across three batches", []pruneBatch{{started: 1}, {started: 1}, {started: 1}, {started: 1}, {started: 2, committed: 1}}, 3},
		{"a Set started in the batch is not held across it", []pruneBatch{{started: 0}, {started: 1, committed: 0}, {started: 2, committed: 1}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := heldAcross(c.batches); got != c.want {
				t.Errorf("heldAcross = %d; want %d", got, c.want)
			}
		})
	}
}

// BenchmarkSetWhilePruning measures a writer's Set latency with no prune
// running and while the sweeper prunes a large history (100 namespaces ×
// 1,000 or 10,000 changes over a keep of 100), in the same run, on the
// same file; and how long each PruneHistory call (one transaction of at
// most HistoryPruneBatch changes, after a read that finds them) takes,
// which bounds how long it holds the write lock. Each iteration makes the
// history anew (not timed) and prunes it all: run it with -benchtime 1x.
func BenchmarkSetWhilePruning(b *testing.B) {
	for _, size := range []struct{ namespaces, changes int }{{100, 1000}, {100, 10000}} {
		b.Run(fmt.Sprintf("%dx%d", size.namespaces, size.changes), func(b *testing.B) {
			benchSetWhilePruning(b, size.namespaces, size.changes)
		})
	}
}

// benchSetWhilePruning is BenchmarkSetWhilePruning over namespaces
// namespaces of changes changes each.
func benchSetWhilePruning(b *testing.B, namespaces, changes int) {
	const keep, idleSets = 100, 3000
	var idle, pruning, calls []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := fmt.Sprintf("%s/state-%d.db", b.TempDir(), i)
		largeHistory(b, path, namespaces, changes, keep)
		s, err := opstate.Open(path, opstate.Options{SweepInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		for j := range idleSets {
			t0 := time.Now()
			if err := s.Set("w", fmt.Sprint("k", j%64), "v"); err != nil {
				b.Fatal(err)
			}
			idle = append(idle, time.Since(t0))
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		batches, lat, s := pruneRun(b, path)
		b.StopTimer()
		pruning = append(pruning, lat...)
		for _, bt := range batches {
			calls = append(calls, bt.took)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"idle", idle}, {"pruning", pruning}} {
		slices.Sort(m.ds)
		b.ReportMetric(us(quantile(m.ds, 0.5)), m.name+"-p50-µs")
		b.ReportMetric(us(quantile(m.ds, 0.99)), m.name+"-p99-µs")
		b.ReportMetric(us(m.ds[len(m.ds)-1]), m.name+"-max-µs")
	}
	b.ReportMetric(float64(len(pruning))/float64(b.N), "sets-while-pruning")
	slices.Sort(calls)
	b.ReportMetric(float64(len(calls))/float64(b.N), "prune-calls")
	b.ReportMetric(us(quantile(calls, 0.5)), "call-p50-µs")
	b.ReportMetric(us(calls[len(calls)-1]), "call-max-µs")
}

// quantile returns the q quantile of sorted ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}
