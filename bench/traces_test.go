package main

import (
	"math"
	"slices"
	"testing"
)

// TestZipfSampler checks that rank 1 is drawn 10^s times as often as
// rank 10, and rank 10 about 10^s times as often as rank 100.
func TestZipfSampler(t *testing.T) {
	const n, draws = 1000, 400_000
	for _, s := range []float64{0.8, 1.0, 1.2} {
		z := newZipf(n, s)
		r := newRand(99)
		counts := make([]float64, n)
		for range draws {
			counts[z.rank(r)]++
		}
		for _, pair := range [][2]int{{1, 10}, {10, 100}} {
			a, b := pair[0], pair[1]
			got := counts[a-1] / counts[b-1]
			want := math.Pow(float64(b)/float64(a), s)
			if math.Abs(got-want)/want > 0.1 {
				t.Errorf("s = %.1f: rank %d drawn %.0f times, rank %d %.0f: ratio %.2f; want %.2f ± 10%%",
					s, a, counts[a-1], b, counts[b-1], got, want)
			}
		}
	}
}

// TestLoopDefeatsLRU checks the loop trace: LRU, always evicting the key
// looked up next, never hits, while the optimum hits most lookups after
// the first pass.
func TestLoopDefeatsLRU(t *testing.T) {
	tr := loopTrace(1000, 20_000)
	tk := newTraceKeys(tr.keys)
	if h := lruHits(tk, tr); h != 0 {
		t.Errorf("LRU hits %d of the loop's %d lookups; want 0", h, len(tr.lookups))
	}
	if h, floor := optimalHits(tr.lookups, tr.keys, tr.capacity), len(tr.lookups)*8/10; h < floor {
		t.Errorf("optimum hits %d of the loop's %d lookups; want at least %d", h, len(tr.lookups), floor)
	}
}

// TestScanTrace checks the scan trace's shape: scans of keys the Zipf
// lookups never ask for, after every scanEvery of them.
func TestScanTrace(t *testing.T) {
	tr := scanTrace(newRand(4), 100)
	if want := traceLookups + traceLookups/scanEvery*scanLen; len(tr.lookups) != want {
		t.Fatalf("%d lookups; want %d", len(tr.lookups), want)
	}
	period := scanEvery + scanLen
	for i, k := range tr.lookups {
		inScan := i%period >= scanEvery
		if scanned := int(k) >= zipfKeys; scanned != inScan {
			t.Fatalf("lookup %d is of key %d: scan %v; want %v", i, k, scanned, inScan)
		}
		if inScan && int(k) != zipfKeys+i%period-scanEvery {
			t.Fatalf("lookup %d of a scan is of key %d; want %d", i, k, zipfKeys+i%period-scanEvery)
		}
	}
}

// TestTracesDeterministic checks that a trace is the same whichever
// traces are generated before it.
func TestTracesDeterministic(t *testing.T) {
	gen := func(names ...string) trace {
		var last trace
		for _, name := range names {
			specs := traceSpecs()
			last = specs[slices.IndexFunc(specs, func(sp traceSpec) bool { return sp.name == name })].gen()
		}
		return last
	}
	a, b := gen("shift"), gen("zipf-1.2/1%", "scan", "shift")
	if !slices.Equal(a.lookups, b.lookups) {
		t.Errorf("shift's lookups differ when other traces are generated first")
	}
}
