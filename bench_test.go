package opstate_test

// Benchmarks of the Store alone. The comparison with other stores, in one
// run, is the separate module in bench/.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

const benchKeys = 10_000

func benchKey(i int) string { return fmt.Sprintf("key-%05d", i%benchKeys) }

// benchValue returns a 32-byte value.
func benchValue(i int) string { return fmt.Sprintf("value-%025d", i) }

// warmStore opens a store holding benchKeys keys in namespace "flags", each
// read once so that it is cached.
func warmStore(b *testing.B, opts opstate.Options) *opstate.Store {
	b.Helper()
	s := mustOpen(b, dbPath(b), opts)
	for i := range benchKeys {
		mustSet(b, s, "flags", benchKey(i), benchValue(i))
		if _, err := s.Get("flags", benchKey(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Get("flags", "missing-"+benchKey(i)); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// benchOrder is a fixed pseudo-random permutation of the key indexes.
var benchOrder = func() []string {
	keys := make([]string, benchKeys)
	x := uint32(2463534242)
	for i := range keys {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		keys[i] = benchKey(int(x))
	}
	return keys
}()

var benchAbsent = func() []string {
	keys := make([]string, len(benchOrder))
	for i, k := range benchOrder {
		keys[i] = "missing-" + k
	}
	return keys
}()

func BenchmarkGet(b *testing.B) {
	for _, c := range []struct {
		name string
		keys []string
	}{{"hit", benchOrder}, {"absent", benchAbsent}} {
		b.Run(c.name, func(b *testing.B) {
			s := warmStore(b, opstate.Options{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Get("flags", c.keys[i%len(c.keys)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			s := warmStore(b, opstate.Options{})
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := s.Get("flags", c.keys[i%len(c.keys)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
	// Every Get reads SQLite: the read path below the cache.
	b.Run("uncached", func(b *testing.B) {
		s := warmStore(b, opstate.Options{CacheBytes: -1})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Get("flags", benchOrder[i%benchKeys]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSet(b *testing.B) {
	for _, d := range []opstate.Durability{opstate.DurabilityNormal, opstate.DurabilityFull} {
		b.Run(d.String(), func(b *testing.B) {
			s := warmStore(b, opstate.Options{Durability: d})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := s.Set("flags", benchOrder[i%benchKeys], benchValue(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		// 8 goroutines: SetParallelism(8/GOMAXPROCS) × GOMAXPROCS.
		b.Run(d.String()+"-8goroutines", func(b *testing.B) {
			s := warmStore(b, opstate.Options{Durability: d})
			// The warm-up's writes ran one per transaction: count only
			// the timed ones.
			batches0, writes0 := s.Batches()
			setsFrom8Goroutines(b, func(key, value string) error { return s.Set("flags", key, value) })
			batches, writes := s.Batches()
			b.ReportMetric(float64(writes-writes0)/float64(batches-batches0), "writes/txn")
		})
	}
}

// BenchmarkSetDuringSweep measures the latency of Sets while DeleteExpired
// deletes 200,000 expired rows, against Sets with no sweep running, and
// reports both p99s in µs and their ratio.
func BenchmarkSetDuringSweep(b *testing.B) {
	const expired = 200_000
	clk := newClock()
	path := dbPath(b)
	s := mustOpen(b, path, opstate.Options{Clock: clk.Now})
	fillExpired(b, path, expired, clk.Now())

	measure := func(d time.Duration) []time.Duration {
		var lat []time.Duration
		for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
			t0 := time.Now()
			if err := s.Set("live", benchKey(i), benchValue(i)); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	b.ResetTimer()
	for b.Loop() {
		quiet := measure(time.Second)

		done := make(chan struct{})
		var swept int64
		var sweepTime time.Duration
		go func() {
			defer close(done)
			t0 := time.Now()
			n, err := s.DeleteExpired(context.Background())
			sweepTime = time.Since(t0)
			if err != nil {
				b.Error(err)
			}
			swept = n
		}()
		var busy []time.Duration
	loop:
		for {
			select {
			case <-done:
				break loop
			default:
				busy = append(busy, measure(10*time.Millisecond)...)
			}
		}
		if swept != expired {
			b.Fatalf("DeleteExpired = %d; want %d", swept, expired)
		}
		q, w := p99(quiet), p99(busy)
		b.ReportMetric(float64(q.Microseconds()), "p99-quiet-µs")
		b.ReportMetric(float64(w.Microseconds()), "p99-sweep-µs")
		b.ReportMetric(float64(w)/float64(q), "p99-ratio")
		b.ReportMetric(float64(len(busy)), "sets-during-sweep")
		b.ReportMetric(sweepTime.Seconds()*1000, "sweep-ms")

		b.StopTimer()
		fillExpired(b, path, expired, clk.Now())
		b.StartTimer()
	}
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

// fillExpired inserts n rows that expired before now, straight into the
// file, in one transaction.
func fillExpired(b *testing.B, path string, n int, now time.Time) {
	b.Helper()
	db := sqlDB(b, path)
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT OR REPLACE INTO operational_state VALUES ('old', ?, 'v', ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	past := now.Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	for i := range n {
		if _, err := st.Exec(fmt.Sprint("k", i), past, past); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	db.Close()
}

// BenchmarkOpenLarge opens a file of 1,000,000 rows and reads one key,
// reporting the time of each.
func BenchmarkOpenLarge(b *testing.B) {
	const rows = 1_000_000
	path := filepath.Join(b.TempDir(), "large.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	s := mustOpen(b, path, opstate.Options{})
	s.Close()
	tx, _ := db.Begin()
	st, err := tx.Prepare(`INSERT INTO operational_state VALUES (?, ?, ?, '2026-03-07T10:00:00.000Z', NULL)`)
	if err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		if _, err := st.Exec(fmt.Sprint("ns", i%1000), fmt.Sprint("key", i), benchValue(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	db.Close()

	for _, verify := range []bool{false, true} {
		b.Run(fmt.Sprint("VerifyOnOpen=", verify), func(b *testing.B) {
			var open, first time.Duration
			for b.Loop() {
				t0 := time.Now()
				s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, VerifyOnOpen: verify})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				v, err := s.Get("ns777", "key777777")
				t2 := time.Now()
				if err != nil || v != benchValue(777777) {
					b.Fatalf("Get = %q, %v", v, err)
				}
				open += t1.Sub(t0)
				first += t2.Sub(t1)
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(open.Microseconds())/1000/float64(b.N), "open-ms")
			b.ReportMetric(float64(first.Microseconds())/float64(b.N), "first-get-µs")
		})
	}
}

// BenchmarkMemoryPerEntry caches entries and reports the heap they take
// beyond their key and value bytes, at two counts: 65,537 entries, just
// past a growth of the cache's slot table (its emptiest), and 100,000.
func BenchmarkMemoryPerEntry(b *testing.B) {
	for _, n := range []int{65_537, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { memoryPerEntry(b, n) })
	}
}

func memoryPerEntry(b *testing.B, n int) {
	for b.Loop() {
		b.StopTimer()
		path := dbPath(b)
		s := mustOpen(b, path, opstate.Options{CacheBytes: 1 << 30})
		keys := make([]string, n)
		vals := make([]string, n)
		for i := range n {
			keys[i] = fmt.Sprintf("key-%07d", i)
			vals[i] = benchValue(i)
		}
		var payload int
		for i := range n {
			payload += len(keys[i]) + len(vals[i])
		}
		b.StartTimer()
		before := heapInUse()
		// Writes in batches through many goroutines would be faster; one
		// transaction per Set keeps the measurement simple.
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := g; i < n; i += 8 {
					if err := s.Set("flags", keys[i], vals[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		after := heapInUse()
		if st := s.CacheStats(); st.Entries != n {
			b.Fatalf("cache holds %d entries; want %d", st.Entries, n)
		}
		b.ReportMetric(float64(int64(after-before)-int64(payload))/float64(n), "heap-B/entry")
		runtime.KeepAlive(keys)
		runtime.KeepAlive(vals)
		b.StopTimer()
		s.Close()
		os.Remove(path)
		b.StartTimer()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkBareUpsert is the baseline for BenchmarkSet: a prepared upsert
// through database/sql, one transaction per write, with opstate's pragmas,
// on opstate's table without the change log's triggers (what a write cost
// before the log).
func BenchmarkBareUpsert(b *testing.B) {
	for _, mode := range []string{"NORMAL", "FULL"} {
		open := func(b *testing.B) *sql.Stmt {
			path := dbPath(b)
			mustOpen(b, path, opstate.Options{}).Close() // create the schema
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous("+mode+")")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			for _, t := range []string{"insert", "update", "rename", "delete"} {
				if _, err := db.Exec(`DROP TRIGGER operational_state_changes_` + t); err != nil {
					b.Fatal(err)
				}
			}
			st, err := db.Prepare(`INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
				VALUES (?, ?, ?, ?, NULL) ON CONFLICT (namespace, key) DO UPDATE SET
				value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`)
			if err != nil {
				b.Fatal(err)
			}
			for i := range benchKeys {
				if _, err := st.Exec("flags", benchKey(i), benchValue(i), "2026-03-07T10:00:00.000Z"); err != nil {
					b.Fatal(err)
				}
			}
			return st
		}
		b.Run(mode, func(b *testing.B) {
			st := open(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
				if _, err := st.Exec("flags", benchOrder[i%benchKeys], benchValue(i), now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode+"-8goroutines", func(b *testing.B) {
			st := open(b)
			setsFrom8Goroutines(b, func(key, value string) error {
				_, err := st.Exec("flags", key, value, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
				return err
			})
		})
	}
}

// setsFrom8Goroutines times set from 8 goroutines (SetParallelism ×
// GOMAXPROCS, where GOMAXPROCS divides 8), each writing a range of 1,000
// keys of its own, and stops the timer when they are done.
func setsFrom8Goroutines(b *testing.B, set func(key, value string) error) {
	b.ReportAllocs()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	var goroutines atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		base := int(goroutines.Add(1)) * 1000
		for i := 0; pb.Next(); i++ {
			if err := set(benchKey(base+i%1000), benchValue(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
}
