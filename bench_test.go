package opstate_test

// Benchmarks of the Store alone. The comparison with other stores, in one
// run, is the separate module in bench/.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
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
		// 8 goroutines on 2 cores: SetParallelism(4) × GOMAXPROCS.
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

// BenchmarkForeignWrite measures what a write committed by another process
// costs a Store with the default SyncInterval:
//
//   - staleness: how long after the writer's Set returned the Store's reads
//     serve it (stale-p50-ms, stale-p99-ms, stale-max-ms), the writer being
//     a child process that reports each commit on a pipe;
//   - one-of-10000: with 10,000 keys cached, one foreign write to one of
//     them, then every key read once: how many reads went to SQLite
//     (sqlite-reads/op; before the change log, all 10,000);
//   - unrelated-table: another connection writes a table of its own in the
//     file every 10ms while the Store serves Gets of 10,000 cached keys: the
//     share of Gets answered from memory (hit-%).
func BenchmarkForeignWrite(b *testing.B) {
	b.Run("staleness", func(b *testing.B) {
		path := dbPath(b)
		reader := mustOpen(b, path, opstate.Options{})
		w := startForeignWriter(b, path)
		mustSet(b, reader, "flags", "toggle", "start")
		var stale []time.Duration
		for i := 0; b.Loop(); i++ {
			if _, err := reader.Get("flags", "toggle"); err != nil { // cached
				b.Fatal(err)
			}
			// A write comes at any moment of the check's interval, not
			// right after the check that served the last one.
			b.StopTimer()
			time.Sleep(time.Duration(rand.Int64N(int64(2 * opstate.DefaultSyncInterval))))
			b.StartTimer()
			want := fmt.Sprint("flip-", i)
			committed := w.set("flags", "toggle", want)
			for {
				v, err := reader.Get("flags", "toggle")
				if err != nil {
					b.Fatal(err)
				}
				if v == want {
					break
				}
				time.Sleep(20 * time.Microsecond)
			}
			stale = append(stale, time.Since(committed))
		}
		slices.Sort(stale)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(stale[len(stale)/2]), "stale-p50-ms")
		b.ReportMetric(ms(stale[len(stale)*99/100]), "stale-p99-ms")
		b.ReportMetric(ms(stale[len(stale)-1]), "stale-max-ms")
	})
	b.Run("one-of-10000", func(b *testing.B) {
		path := dbPath(b)
		reader := mustOpen(b, path, opstate.Options{})
		w := startForeignWriter(b, path)
		for i := range benchKeys {
			mustSet(b, reader, "flags", benchKey(i), benchValue(i))
		}
		readAll := func() {
			for i := range benchKeys {
				if _, err := reader.Get("flags", benchKey(i)); err != nil {
					b.Fatal(err)
				}
			}
		}
		readAll()
		var loads uint64
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			readAll() // every key cached
			want := fmt.Sprint("foreign-", i)
			w.set("flags", benchKey(i), want)
			for v := ""; v != want; {
				time.Sleep(100 * time.Microsecond)
				var err error
				if v, err = reader.Get("flags", benchKey(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			before := reader.Stats().Misses
			readAll()
			loads += reader.Stats().Misses - before
		}
		// The read of the written key that saw the write is not counted:
		// the loop above made it.
		b.ReportMetric(float64(loads)/float64(b.N), "sqlite-reads/op")
	})
	b.Run("unrelated-table", func(b *testing.B) {
		path := dbPath(b)
		mustOpen(b, path, opstate.Options{SyncInterval: -1}).Close()
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			b.Fatal(err)
		}
		defer raw.Close()
		// Created before the Store opens the file: a schema change
		// empties its cache.
		if _, err := raw.Exec(`PRAGMA busy_timeout = 5000; CREATE TABLE app_events (id INTEGER PRIMARY KEY, body TEXT)`); err != nil {
			b.Fatal(err)
		}
		s := mustOpen(b, path, opstate.Options{})
		for i := range benchKeys {
			mustSet(b, s, "flags", benchKey(i), benchValue(i))
		}
		stop := ticking(10*time.Millisecond, func() error {
			_, err := raw.Exec(`INSERT INTO app_events (body) VALUES ('tick')`)
			return err
		})
		for _, k := range benchOrder {
			if _, err := s.Get("flags", k); err != nil {
				b.Fatal(err)
			}
		}
		before := s.Stats().Misses
		var gets uint64
		for i := 0; b.Loop(); i++ {
			if _, err := s.Get("flags", benchOrder[i%len(benchOrder)]); err != nil {
				b.Fatal(err)
			}
			gets++
			if i%1000 == 0 {
				runtime.Gosched() // let the writer and the check run
			}
		}
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(100*(1-float64(s.Stats().Misses-before)/float64(gets)), "hit-%")
	})
}

// BenchmarkIdleStore measures what a Store with default Options costs the
// process in CPU time per second of wall time (cpu-%core), 200ms of wall
// time an iteration:
//
//   - idle: nothing uses the Store. Its poller of others' writes checks
//     every SyncInterval until dormantAfter checks found no read, then
//     sleeps; what is left is the runtime's.
//   - read-every-ms: one cached Get a millisecond keeps the poller awake:
//     a wake-up and a PRAGMA data_version every SyncInterval;
//   - read-every-ms-nocheck: the same with SyncInterval -1, no poller: the
//     reading goroutine's own cost (its ticker's wake-ups, mostly), to
//     subtract from the row above.
func BenchmarkIdleStore(b *testing.B) {
	for _, name := range []string{"idle", "read-every-ms", "read-every-ms-nocheck"} {
		reading := name != "idle"
		b.Run(name, func(b *testing.B) {
			opts := opstate.Options{}
			if name == "read-every-ms-nocheck" {
				opts.SyncInterval = -1
			}
			s := mustOpen(b, dbPath(b), opts)
			mustSet(b, s, "flags", "k", "v")
			stop := func() error { return nil }
			if reading {
				stop = ticking(time.Millisecond, func() error {
					_, err := s.Get("flags", "k")
					return err
				})
			}
			runtime.GC()
			start, cpu0 := time.Now(), processCPU(b)
			for b.Loop() {
				time.Sleep(200 * time.Millisecond)
			}
			b.ReportMetric(100*float64(processCPU(b)-cpu0)/float64(time.Since(start)), "cpu-%core")
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// ticking calls f every interval in a goroutine of its own until f fails
// or the returned stop is called; stop waits for the goroutine and returns
// f's error.
func ticking(interval time.Duration, f func() error) (stop func() error) {
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				done <- nil
				return
			case <-t.C:
				if err := f(); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	return func() error {
		close(quit)
		return <-done
	}
}

// foreignWriter is a child process that writes with a Store of its own on
// command.
type foreignWriter struct {
	b testing.TB
	*pipedChild
}

// startForeignWriter starts a child process writing to the file at path,
// and stops it when the benchmark ends.
func startForeignWriter(b testing.TB, path string) *foreignWriter {
	w := &foreignWriter{b: b, pipedChild: startPipedChild(b, "foreignwriter", "OPSTATE_TEST_PATH="+path)}
	w.set("flags", "ready", "1")
	return w
}

// set has the child Set ns/key to value and returns when the child's Set
// has returned.
func (w *foreignWriter) set(ns, key, value string) time.Time {
	w.b.Helper()
	if _, err := fmt.Fprintf(w.in, "%q %q %q\n", ns, key, value); err != nil {
		w.b.Fatal(err)
	}
	if !w.out.Scan() {
		w.b.Fatalf("foreign writer: %v", w.out.Err())
	}
	now := time.Now()
	if got := w.out.Text(); got != "ok" {
		w.b.Fatalf("foreign writer: %s", got)
	}
	return now
}

func init() {
	childRoles["foreignwriter"] = func() int {
		s, err := opstate.Open(os.Getenv("OPSTATE_TEST_PATH"), opstate.Options{})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer s.Close()
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			var ns, key, value string
			if _, err := fmt.Sscanf(in.Text(), "%q %q %q", &ns, &key, &value); err != nil {
				fmt.Println(err)
				return 1
			}
			if err := s.Set(ns, key, value); err != nil {
				fmt.Println(err)
				return 1
			}
			fmt.Println("ok")
		}
		return 0
	}
}

// setsFrom8Goroutines times set from 8 goroutines (SetParallelism × the 2
// cores here), each writing a range of 1,000 keys of its own, and stops the
// timer when they are done.
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

// walBackstop is the size of a -wal file holding 4096 frames of 4 KiB
// pages (a 24-byte header each) after the log's 32-byte header: SQLite's
// wal_autocheckpoint backstop, past which a commit runs a checkpoint
// itself.
const walBackstop = 32 + 4096*(4096+24)

// sustainedLoad is a stream of Sets written back to back.
type sustainedLoad struct {
	name    string
	sets    int
	prefill int                // keys written, and the Store reopened, before the timed Sets
	key     func(j int) string // the key of the load's j-th Set
	value   func(j int) string // and its value
}

// sustainedLoads are the loads of issue 8, under which the write-ahead log
// outgrew the backstop: new keys of 1 KiB values, and 32-byte overwrites
// of keys scattered over 10,000.
var sustainedLoads = []sustainedLoad{
	{
		name:  "new-1KiB",
		sets:  8000,
		key:   func(j int) string { return fmt.Sprintf("new-%05d", j) },
		value: func(j int) string { return fmt.Sprintf("%-1024d", j) },
	},
	{
		name:    "overwrite-32B",
		sets:    30_000,
		prefill: benchKeys,
		key:     func(j int) string { return benchOrder[j%benchKeys] },
		value:   benchValue,
	},
}

// prefillFile writes the keys load overwrites to the file at path, and
// closes the Store, which checkpoints and removes the log.
func (load sustainedLoad) prefillFile(tb testing.TB, path string) {
	tb.Helper()
	if load.prefill == 0 {
		return
	}
	s := mustOpen(tb, path, opstate.Options{})
	for j := range load.prefill {
		mustSet(tb, s, "flags", load.key(j), load.value(j))
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// sustainedRun is what one run of a sustainedLoad measured.
type sustainedRun struct {
	lat         []time.Duration // of every Set
	walMax      int64           // the largest size of the -wal file
	checkpoints uint64          // complete background checkpoints
	heldMax     time.Duration   // the longest one of them held writes off
}

// run writes load to a new Store at path, prefilled, from writers
// goroutines (the j-th Set of the load by goroutine j%writers), while
// readers goroutines call List, which always reads SQLite, without pause.
// It reads the size of the -wal file with os.Stat every millisecond and
// once more before Close.
func (load sustainedLoad) run(tb testing.TB, path string, writers, readers int) sustainedRun {
	tb.Helper()
	s := mustOpen(tb, path, opstate.Options{})
	var largest atomic.Int64
	statWAL := func() {
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > largest.Load() {
			largest.Store(fi.Size())
		}
	}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				statWAL()
			}
		}
	}()
	var readWG sync.WaitGroup
	for range readers {
		readWG.Add(1)
		go func() {
			defer readWG.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.List("other"); err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	lats := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]time.Duration, 0, load.sets/writers+1)
			for j := g; j < load.sets; j += writers {
				t0 := time.Now()
				if err := s.Set("flags", load.key(j), load.value(j)); err != nil {
					tb.Error(err)
					return
				}
				own = append(own, time.Since(t0))
			}
			lats[g] = own
		}()
	}
	wg.Wait()
	close(stop)
	<-polled
	readWG.Wait()
	statWAL()
	r := sustainedRun{lat: slices.Concat(lats...), walMax: largest.Load()}
	r.checkpoints, r.heldMax = s.Checkpoints()
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return r
}

// BenchmarkSustainedWrites writes each of sustainedLoads without pause,
// from one goroutine, from 8, and from one while 2 others read SQLite
// without pause, to a new Store per iteration (ns/op is one whole load),
// and reports the largest size the -wal file reached (SQLite's backstop of
// 4096 frames, walBackstop, is 16.1 MiB), the p50, p99 and largest latency
// of a Set (a Set that pays for a checkpoint shows in the largest), how many
// background checkpoints completed per load, and the longest one held
// writes off.
func BenchmarkSustainedWrites(b *testing.B) {
	for _, load := range sustainedLoads {
		for _, c := range []struct{ writers, readers int }{{1, 0}, {8, 0}, {1, 2}} {
			name := fmt.Sprintf("%s/%dwriters", load.name, c.writers)
			if c.readers > 0 {
				name += fmt.Sprintf("-%dreaders", c.readers)
			}
			b.Run(name, func(b *testing.B) {
				var all sustainedRun
				for b.Loop() {
					b.StopTimer()
					path := dbPath(b)
					load.prefillFile(b, path)
					b.StartTimer()
					r := load.run(b, path, c.writers, c.readers)
					all.lat = append(all.lat, r.lat...)
					all.walMax = max(all.walMax, r.walMax)
					all.checkpoints += r.checkpoints
					all.heldMax = max(all.heldMax, r.heldMax)
				}
				lat := all.lat
				slices.Sort(lat)
				b.ReportMetric(float64(all.walMax)/(1<<20), "wal-max-MiB")
				b.ReportMetric(float64(all.checkpoints)/float64(b.N), "checkpoints")
				b.ReportMetric(float64(all.heldMax.Nanoseconds())/1000, "held-max-µs")
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
				b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1000, "max-µs")
			})
		}
	}
}
