package opstate_test

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

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

// sustainedLoads are the loads under which the write-ahead log once
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
