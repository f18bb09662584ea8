package main

import (
	"math/rand/v2"
	"testing"
)

// bruteHits is the most hits any policy can get on lookups with room for
// capacity entries, admitting or not what it looks up, by trying every
// choice: the set of cached keys (below 64) is a bit mask.
func bruteHits(lookups []int32, capacity int) int {
	var best func(i int, cached uint64, size int) int
	best = func(i int, cached uint64, size int) int {
		if i == len(lookups) {
			return 0
		}
		bit := uint64(1) << lookups[i]
		if cached&bit != 0 {
			return 1 + best(i+1, cached, size)
		}
		h := best(i+1, cached, size) // not admitted
		if size < capacity {
			h = max(h, best(i+1, cached|bit, size+1))
		}
		for rest := cached; rest != 0; rest &= rest - 1 {
			out := rest & -rest
			h = max(h, best(i+1, cached&^out|bit, size))
		}
		return h
	}
	return best(0, 0, 0)
}

func randomLookups(r *rand.Rand, n, keys int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(keys))
	}
	return out
}

// TestOptimalExhaustive checks optimalHits against an exhaustive search of
// every admission and eviction choice on small random traces.
func TestOptimalExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		keys := 2 + r.IntN(5)
		capacity := 1 + r.IntN(3)
		lookups := randomLookups(r, 4+r.IntN(9), keys)
		if got, want := optimalHits(lookups, keys, capacity), bruteHits(lookups, capacity); got != want {
			t.Fatalf("optimalHits(%v, capacity %d) = %d; want %d (exhaustive search)", lookups, capacity, got, want)
		}
	}
}

// TestOptimalBeatsPolicies checks that on larger random and skewed traces
// the optimum never has fewer hits than LRU or otter.
func TestOptimalBeatsPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	const keys = 500
	tk := newTraceKeys(keys)
	z := newZipf(keys, 0.9)
	for i := range 20 {
		var lookups []int32
		if i%2 == 0 {
			lookups = randomLookups(r, 5000, keys)
		} else {
			lookups = zipfLookups(r, z, r.Perm(keys), 5000)
		}
		tr := trace{name: "random", capacity: 10 + r.IntN(100), keys: keys, lookups: lookups}
		opt := optimalHits(tr.lookups, keys, tr.capacity)
		if l := lruHits(tk, tr); opt < l {
			t.Errorf("trace %d, capacity %d: optimalHits = %d < LRU's %d", i, tr.capacity, opt, l)
		}
		if o, _ := otterHits(tk, tr, false); opt < o {
			t.Errorf("trace %d, capacity %d: optimalHits = %d < otter's %d", i, tr.capacity, opt, o)
		}
	}
}
