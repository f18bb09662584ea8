package main

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// setter is one implementation's Set. Writes cost microseconds, so calling
// them through a function value costs nothing measurable, unlike reads.
type setter func(ns, key, value string) error

// concurrentWriters is the least number of goroutines of the concurrent set
// benchmarks.
const concurrentWriters = 8

// writerParallelism returns the b.SetParallelism argument that gives at
// least concurrentWriters goroutines, and how many goroutines that is.
func writerParallelism() (par, goroutines int) {
	procs := runtime.GOMAXPROCS(0)
	par = (concurrentWriters + procs - 1) / procs
	return par, par * procs
}

// setSingle writes from one goroutine: operation j sets key order[j] to the
// next value of the ring. The position carries over between runs, so every
// Set changes the stored value.
func setSingle(set setter, w *workload, fail *failures) func(*testing.B) {
	seq := 0
	return func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := set(namespace, w.keys[seq%numKeys], w.ring[seq%ringLen]); err != nil {
				fail.add(err)
				return
			}
			seq++
		}
	}
}

// setConcurrent writes from writerParallelism goroutines, each on its own
// share of the keys, so that no two goroutines write the same key.
func setConcurrent(set setter, w *workload, fail *failures) func(*testing.B) {
	var runs atomic.Int64
	return func(b *testing.B) {
		par, goroutines := writerParallelism()
		share := numKeys / goroutines
		shift := int(runs.Add(1)) * 31 // moves the values between runs
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			g := int(next.Add(1)-1) % goroutines
			keys := w.keys[g*share : (g+1)*share]
			i := 0
			for pb.Next() {
				if err := set(namespace, keys[i%share], w.ring[(i+g+shift)%ringLen]); err != nil {
					fail.add(err)
					return
				}
				i++
			}
		})
	}
}
