package cache_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/d8da9184/opstate/internal/cache"
)

// zipfTrace returns n lookups of keys 0..keys-1 with Zipf exponent s (any
// s > 0), the popularity of the ranks over a random permutation of the
// keys.
func zipfTrace(rng *rand.Rand, keys, n int, s float64) []int {
	cdf := make([]float64, keys)
	sum := 0.0
	for i := range keys {
		sum += math.Pow(float64(i+1), -s)
		cdf[i] = sum
	}
	perm := rng.Perm(keys)
	out := make([]int, n)
	for i := range out {
		r := sort.SearchFloat64s(cdf, rng.Float64()*sum)
		out[i] = perm[min(r, keys-1)]
	}
	return out
}

// hitRatio runs trace through a cache of capacity entries of one namespace
// (the budget is what they cost), filling each miss, and returns the
// share of lookups that hit.
func hitRatio(trace []int, capacity int) float64 {
	e := Entry{Value: "value-0123456789"}
	key := func(k int) string { return fmt.Sprintf("key-%07d", k) }
	c := cache.New(nsBytes("ns") + int64(capacity)*entryBytes(key(0), e))
	hits := 0
	for _, k := range trace {
		if _, ok := c.Get("ns", key(k)); ok {
			hits++
			continue
		}
		c.Fill("ns", key(k), e, c.Token("ns", key(k)))
	}
	return float64(hits) / float64(len(trace))
}

// lruHitRatio is hitRatio for an exact LRU of capacity entries.
func lruHitRatio(trace []int, capacity int) float64 {
	pos := make(map[int]int) // key -> last use
	var order []int          // keys by last use, lazily
	hits := 0
	for t, k := range trace {
		if _, ok := pos[k]; ok {
			hits++
		}
		pos[k] = t
		order = append(order, k)
		for len(pos) > capacity {
			old := order[0]
			order = order[1:]
			if last, ok := pos[old]; ok && trace[last] == old && last == indexOfLast(pos, old) {
				delete(pos, old)
			}
		}
	}
	return float64(hits) / float64(len(trace))
}

func indexOfLast(pos map[int]int, k int) int { return pos[k] }

func TestHitRatioReport(t *testing.T) {
	if testing.Short() {
		t.Skip("report")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const keys, n = 100_000, 400_000
	for _, s := range []float64{0.8, 1.0, 1.2} {
		tr := zipfTrace(rng, keys, n, s)
		for _, pct := range []int{1, 10} {
			capacity := keys * pct / 100
			t.Logf("zipf-%.1f at %d%%: %.3f", s, pct, hitRatio(tr, capacity))
		}
	}
	// scan: zipf-1.0 with a pass over 20,000 cold keys every 50,000
	tr := zipfTrace(rng, keys, n, 1.0)
	var scan []int
	for i, k := range tr {
		scan = append(scan, k)
		if i%50_000 == 49_999 {
			for j := range 20_000 {
				scan = append(scan, keys+j)
			}
		}
	}
	t.Logf("scan at 10%%: %.3f", hitRatio(scan, keys/10))
	// shift
	a, b := zipfTrace(rng, keys, n/2, 1.0), zipfTrace(rng, keys, n/2, 1.0)
	t.Logf("shift at 10%%: %.3f", hitRatio(slices.Concat(a, b), keys/10))
	// loop
	var loop []int
	for len(loop) < n {
		for k := range 11_000 {
			loop = append(loop, k)
		}
	}
	t.Logf("loop 11000 at 10000: %.3f", hitRatio(loop, 10_000))
}
