package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cache"
)

// namespaceOverhead is what the cache charges a namespace that holds
// entries, beside its name (cache/evict.go).
const namespaceOverhead = 192

// cachedBytes is what the cache accounts for namespace ns holding the
// given keys and values (a negative entry has the value "").
func cachedBytes(ns string, kvs ...string) int64 {
	n := int64(len(ns) + namespaceOverhead)
	for i := 0; i < len(kvs); i += 2 {
		n += int64(len(kvs[i])+len(kvs[i+1])) + cache.EntryOverhead
	}
	return n
}

// statsOpts are Options under which nothing but the test's own calls
// changes the counts: no foreign-change checks, no background sweeps.
func statsOpts(clk *clock, cacheBytes int64) opstate.Options {
	return opstate.Options{SyncInterval: -1, SweepInterval: -1, Clock: clk.Now, CacheBytes: cacheBytes}
}

// TestStatsCounts checks that Stats counts every kind of operation exactly,
// one sequence of calls at a time: hits (negative entries, Lookup and
// expired entries included), misses, writes and their transactions, failed
// writes, evictions, swept rows, and the cache's entries and bytes; and
// that calls refused for their input count nowhere.
func TestStatsCounts(t *testing.T) {
	const ns = "ns"
	for _, tt := range []struct {
		name       string
		cacheBytes int64
		run        func(t *testing.T, s *opstate.Store, clk *clock, path string)
		want       opstate.Stats
	}{
		{
			name: "nothing",
			run:  func(*testing.T, *opstate.Store, *clock, string) {},
		},
		{
			name: "hits",
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				mustSet(t, s, ns, "a", "v")
				for range 3 {
					if got, err := s.Get(ns, "a"); got != "v" || err != nil {
						t.Fatalf("Get(%q, %q) = %q, %v; want %q, nil", ns, "a", got, err, "v")
					}
				}
				wantGet(t, s, ns, "a", "v", true)
			},
			want: opstate.Stats{Hits: 4, Writes: 1, Commits: 1, Entries: 1, Bytes: cachedBytes(ns, "a", "v")},
		},
		{
			name: "misses fill negative entries",
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				for range 3 {
					wantGet(t, s, ns, "absent", "", false)
				}
				wantGet(t, s, ns, "other", "", false)
			},
			want: opstate.Stats{Hits: 2, Misses: 2, Entries: 2, Bytes: cachedBytes(ns, "absent", "", "other", "")},
		},
		{
			name:       "no cache: every read misses",
			cacheBytes: -1,
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				mustSet(t, s, ns, "a", "v")
				for range 3 {
					wantGet(t, s, ns, "a", "v", true)
				}
				wantGet(t, s, ns, "absent", "", false)
			},
			want: opstate.Stats{Misses: 4, Writes: 1, Commits: 1},
		},
		{
			name: "refused calls count nothing",
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				for _, k := range [][2]string{{"", "k"}, {ns, ""}} {
					if _, _, err := s.Lookup(k[0], k[1]); err == nil {
						t.Errorf("Lookup(%q, %q) = nil error; want ErrEmptyName", k[0], k[1])
					}
					if err := s.Set(k[0], k[1], "v"); err == nil {
						t.Errorf("Set(%q, %q) = nil; want ErrEmptyName", k[0], k[1])
					}
				}
				if err := s.SetWithTTL(ns, "k", "v", 0); err == nil {
					t.Errorf("SetWithTTL(ttl 0) = nil; want ErrInvalidTTL")
				}
			},
		},
		{
			name: "deletes",
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				mustSet(t, s, ns, "a", "v")
				mustSet(t, s, ns, "b", "w")
				if err := s.Delete(ns, "a"); err != nil {
					t.Fatal(err)
				}
				wantGet(t, s, ns, "a", "", false) // the Delete cached "absent"
				if err := s.DeleteNamespace("other"); err != nil {
					t.Fatal(err)
				}
			},
			want: opstate.Stats{Hits: 1, Writes: 4, Commits: 4, Entries: 2, Bytes: cachedBytes(ns, "a", "", "b", "w")},
		},
		{
			name: "delete namespace empties it",
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				mustSet(t, s, ns, "a", "v")
				mustSet(t, s, ns, "b", "w")
				if err := s.DeleteNamespace(ns); err != nil {
					t.Fatal(err)
				}
				wantGet(t, s, ns, "a", "", false)
			},
			want: opstate.Stats{Misses: 1, Writes: 3, Commits: 3, Entries: 1, Bytes: cachedBytes(ns, "a", "")},
		},
		{
			// Room for three entries of "ns": the fourth and fifth Set
			// evict the oldest, and reading an evicted key evicts again.
			name:       "evictions",
			cacheBytes: cachedBytes(ns, "k0", "v", "k1", "v", "k2", "v") + 63,
			run: func(t *testing.T, s *opstate.Store, _ *clock, _ string) {
				// Room for 3: k2 and k3, each written once as k0 and k1
				// were, are not admitted in their place (2 evictions); k4,
				// the last written, waits in the cache's window and hits;
				// k2 misses, and its fill evicts one more.
				for i := range 5 {
					mustSet(t, s, ns, fmt.Sprint("k", i), "v")
				}
				wantGet(t, s, ns, "k4", "v", true)
				wantGet(t, s, ns, "k2", "v", true)
			},
			want: opstate.Stats{Hits: 1, Misses: 1, Evictions: 3, Writes: 5, Commits: 5, Entries: 3,
				Bytes: cachedBytes(ns, "k0", "v", "k3", "v", "k4", "v")},
		},
		{
			name: "expired rows swept",
			run: func(t *testing.T, s *opstate.Store, clk *clock, _ string) {
				for _, k := range []string{"t1", "t2", "t3"} {
					if err := s.SetWithTTL(ns, k, "v", time.Second); err != nil {
						t.Fatal(err)
					}
				}
				mustSet(t, s, ns, "kept", "v")
				clk.Advance(2 * time.Second)
				wantGet(t, s, ns, "t1", "", false) // an expired entry, served from the cache
				n, err := s.DeleteExpired(context.Background())
				if n != 3 || err != nil {
					t.Fatalf("DeleteExpired = %d, %v; want 3, nil", n, err)
				}
				if n, err := s.DeleteExpired(context.Background()); n != 0 || err != nil {
					t.Fatalf("second DeleteExpired = %d, %v; want 0, nil", n, err)
				}
			},
			want: opstate.Stats{Hits: 1, Writes: 4, Commits: 4, Expired: 3, Entries: 1, Bytes: cachedBytes(ns, "kept", "v")},
		},
		{
			name: "failed writes",
			run: func(t *testing.T, s *opstate.Store, _ *clock, path string) {
				if _, err := sqlDB(t, path).Exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON operational_state
					WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned key'); END`); err != nil {
					t.Fatal(err)
				}
				for range 2 {
					if err := s.Set(ns, "poison", "x"); err == nil {
						t.Fatal("Set(poison) = nil; want the trigger's error")
					}
				}
				mustSet(t, s, ns, "a", "v")
			},
			want: opstate.Stats{Writes: 3, Commits: 3, WriteErrors: 2, Entries: 1, Bytes: cachedBytes(ns, "a", "v")},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			path := dbPath(t)
			s := mustOpen(t, path, statsOpts(clk, tt.cacheBytes))
			tt.run(t, s, clk, path)
			if got := s.Stats(); got != tt.want {
				t.Errorf("Stats() = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

// TestStatsConcurrent checks that counts from many goroutines at once sum
// exactly: Gets of keys that every goroutine reads (one hot key among
// them) and of keys each reads alone, cached present and absent, and
// writes that share transactions; more goroutines than the hit counter
// has stripes, so that some share one. Meanwhile Stats is read over and
// over, and no counter may ever go down. Run it with -race: counting and
// reading the counts must be free of data races.
func TestStatsConcurrent(t *testing.T) {
	const (
		goroutines = 100
		rounds     = 400
		ns         = "ns"
	)
	s := mustOpen(t, dbPath(t), statsOpts(newClock(), 0))
	keys := []string{"hot", "absent"}
	for g := range goroutines {
		keys = append(keys, fmt.Sprint("own-", g))
	}
	for _, k := range keys {
		if k != "absent" {
			mustSet(t, s, ns, k, "v")
		}
	}
	wantGet(t, s, ns, "absent", "", false) // caches "absent"
	before := s.Stats()

	stop := make(chan struct{})
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		last := before
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := s.Stats()
			if st.Hits < last.Hits || st.Misses < last.Misses || st.Writes < last.Writes || st.Commits < last.Commits {
				t.Errorf("Stats() = %+v after %+v: a counter went down", st, last)
				return
			}
			last = st
		}
	}()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			own := fmt.Sprint("own-", g)
			for i := range rounds {
				k := "hot"
				switch i % 4 {
				case 1:
					k = own
				case 2:
					k = "absent"
				}
				if _, err := s.Get(ns, k); err != nil {
					t.Errorf("Get(%q, %q) = %v", ns, k, err)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range rounds / 100 {
				if err := s.Set("writes", fmt.Sprint(g, "-", i), "v"); err != nil {
					t.Errorf("Set = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-reader
	got := s.Stats()
	if d := got.Hits - before.Hits; d != goroutines*rounds {
		t.Errorf("Hits grew by %d; want %d (%d goroutines × %d cached Gets)", d, goroutines*rounds, goroutines, rounds)
	}
	if got.Misses != before.Misses {
		t.Errorf("Misses = %d; want %d, as before the cached Gets", got.Misses, before.Misses)
	}
	writes := uint64(goroutines * (rounds / 100))
	if d := got.Writes - before.Writes; d != writes {
		t.Errorf("Writes grew by %d; want %d", d, writes)
	}
	if d := got.Commits - before.Commits; d < 1 || d > writes {
		t.Errorf("Commits grew by %d; want 1 to %d", d, writes)
	}
	if got.WriteErrors != 0 {
		t.Errorf("WriteErrors = %d; want 0", got.WriteErrors)
	}
}

// TestStatsAfterClose checks that Stats works after Close and returns the
// final counts, and that calls refused with ErrClosed add nothing.
func TestStatsAfterClose(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), statsOpts(clk, 0)) // its Close at cleanup is a second one: harmless
	mustSet(t, s, "ns", "a", "v")
	wantGet(t, s, "ns", "a", "v", true)
	wantGet(t, s, "ns", "absent", "", false)
	if err := s.SetWithTTL("ns", "t", "v", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
		t.Fatalf("DeleteExpired = %d, %v; want 1, nil", n, err)
	}
	want := opstate.Stats{Hits: 1, Misses: 1, Writes: 2, Commits: 2, Expired: 1, Entries: 2,
		Bytes: cachedBytes("ns", "a", "v", "absent", "")}
	if got := s.Stats(); got != want {
		t.Fatalf("Stats() before Close = %+v\nwant                    %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("ns", "a"); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}
	if err := s.Set("ns", "a", "w"); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Set after Close = %v; want ErrClosed", err)
	}
	want.Entries, want.Bytes = 0, 0 // Close empties the cache
	if got := s.Stats(); got != want {
		t.Errorf("Stats() after Close = %+v\nwant                   %+v", got, want)
	}
}

// TestStripesSpread checks that goroutines alive at the same time add to
// different stripes of the hit counter, which is what keeps cached Gets on
// different cores from sharing a cache line; and that the counter sums
// every add.
func TestStripesSpread(t *testing.T) {
	const goroutines = 8
	var c opstate.StripedCounter
	// All goroutines are alive, each on its own stack, until every one
	// has added: none can take over another's stack.
	var added, wg sync.WaitGroup
	added.Add(goroutines)
	release := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			for range 100 {
				c.Add()
			}
			added.Done()
			<-release
		})
	}
	added.Wait()
	close(release)
	wg.Wait()
	if got := c.Load(); got != goroutines*100 {
		t.Errorf("Load() = %d; want %d", got, goroutines*100)
	}
	if n := c.StripesUsed(); n < goroutines/2 {
		t.Errorf("%d goroutines added to %d stripes; want at least %d", goroutines, n, goroutines/2)
	}
}

// BenchmarkCounter compares the hit counter with a single atomic counter,
// alone and from every core at once: the parallel rows show what sharing
// one cache line costs the cores.
func BenchmarkCounter(b *testing.B) {
	b.ReportAllocs()
	b.Run("striped", func(b *testing.B) {
		var c opstate.StripedCounter
		for b.Loop() {
			c.Add()
		}
	})
	b.Run("atomic", func(b *testing.B) {
		var c atomic.Uint64
		for b.Loop() {
			c.Add(1)
		}
	})
	b.Run("striped-parallel", func(b *testing.B) {
		var c opstate.StripedCounter
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add()
			}
		})
	})
	b.Run("atomic-parallel", func(b *testing.B) {
		var c atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
}
