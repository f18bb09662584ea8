package main

import (
	"math/rand/v2"
	"testing"
)

// lfuSlow is lfuHits by the definition: on every miss with the cache
// full, a search of the cached keys for the least counted.
func lfuSlow(lookups []int32, keys, capacity int) int {
	count := make([]int, keys)
	at := make([]int, keys)
	var cached []int32
	hits := 0
	for i, k := range lookups {
		count[k]++
		at[k] = i
		found := false
		for _, c := range cached {
			if c == k {
				found = true
			}
		}
		switch {
		case found:
			hits++
		case len(cached) < capacity:
			cached = append(cached, k)
		default:
			least := 0
			for j, c := range cached {
				l := cached[least]
				if count[c] < count[l] || count[c] == count[l] && at[c] < at[l] {
					least = j
				}
			}
			if count[cached[least]] < count[k] {
				cached[least] = k
			}
		}
	}
	return hits
}

// smallTrace returns a random trace of a few dozen keys at most, Zipf
// with a random exponent, and a capacity below the keys.
func smallTrace(r *rand.Rand) (lookups []int32, keys, capacity int) {
	keys = 2 + r.IntN(30)
	capacity = 1 + r.IntN(keys)
	z := newZipf(keys, r.Float64()*1.5)
	lookups = make([]int32, 50+r.IntN(500))
	for i := range lookups {
		lookups[i] = int32(z.rank(r))
	}
	return lookups, keys, capacity
}

func TestLFUHits(t *testing.T) {
	r := newRand(99)
	for round := range 200 {
		lookups, keys, capacity := smallTrace(r)
		if got, want := lfuHits(lookups, keys, capacity), lfuSlow(lookups, keys, capacity); got != want {
			t.Fatalf("round %d: lfuHits = %d; the search gives %d (keys %d, capacity %d)", round, got, want, keys, capacity)
		}
	}
	// A key looked up more often than the cached one replaces it; a tie
	// does not.
	if got := lfuHits([]int32{0, 0, 1, 1, 1, 1, 0}, 2, 1); got != 2 {
		t.Errorf("lfuHits(0 0 1 1 1 1 0, capacity 1) = %d; want 2 (the second 0, the fourth 1)", got)
	}
	// Nothing beats the optimum.
	for _, sp := range traceSpecs() {
		if sp.name != "loop" && sp.name != "zipf-1.0/1%" {
			continue
		}
		tr := sp.gen()
		if l, o := lfuHits(tr.lookups, tr.keys, tr.capacity), optimalHits(tr.lookups, tr.keys, tr.capacity); l > o {
			t.Errorf("%s: LFU hits %d, more than the optimum's %d", sp.name, l, o)
		}
	}
}
