package opstate_test

import (
	"bufio"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

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
