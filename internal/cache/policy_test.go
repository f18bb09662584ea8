package cache_test

import (
	"fmt"
	"testing"

	"github.com/d8da9184/opstate/internal/cache"
)

// policyCache is a cache of capacity entries of the form read and filled
// by use, in one namespace.
type policyCache struct {
	*cache.Cache
	hits, misses int
}

var policyValue = Entry{Value: "value-0123456789"}

func policyKey(k int) string { return fmt.Sprintf("key-%07d", k) }

func newPolicyCache(capacity int) *policyCache {
	return &policyCache{Cache: cache.New(nsBytes("ns") + int64(capacity)*entryBytes(policyKey(0), policyValue))}
}

// use reads key k, filling it on a miss, as a Store does.
func (c *policyCache) use(k int) {
	key := policyKey(k)
	if _, ok := c.Get("ns", key); ok {
		c.hits++
		return
	}
	c.misses++
	c.Fill("ns", key, policyValue, c.Token("ns", key))
}

// cached counts the keys from..to-1 that are cached, without using them.
func (c *policyCache) cached(from, to int) int {
	n := 0
	for k := from; k < to; k++ {
		if c.Contains("ns", policyKey(k)) {
			n++
		}
	}
	return n
}

// TestScanKeepsHotSet reads a hot set until it is cached, then reads
// 20 times the cache's capacity of other keys once each, as a List or a
// batch job does: the hot set must stay cached (a recency-only policy
// keeps none of it).
func TestScanKeepsHotSet(t *testing.T) {
	const capacity, hot = 1000, 400
	c := newPolicyCache(capacity)
	for range 20 {
		for k := range hot {
			c.use(k)
		}
	}
	if n := c.cached(0, hot); n != hot {
		t.Fatalf("%d of the %d hot keys cached after 20 rounds; want all", n, hot)
	}
	for k := hot; k < hot+20*capacity; k++ {
		c.use(k)
	}
	if n := c.cached(0, hot); n < hot*95/100 {
		t.Errorf("%d of the %d hot keys cached after a scan of %d keys; want at least 95%%", n, hot, 20*capacity)
	}
	if st := c.Stats(); st.Entries > capacity {
		t.Errorf("Stats().Entries = %d; want at most the capacity %d", st.Entries, capacity)
	}
}

// TestLoopHits reads a loop of keys a tenth larger than the cache, over
// and over: a recency-only policy evicts each key just before its next
// use and never hits; this one must keep most of the cache's worth.
func TestLoopHits(t *testing.T) {
	const capacity = 1000
	c := newPolicyCache(capacity)
	for round := range 20 {
		if round == 10 {
			c.hits, c.misses = 0, 0
		}
		for k := range capacity * 11 / 10 {
			c.use(k)
		}
	}
	if ratio := float64(c.hits) / float64(c.hits+c.misses); ratio < 0.7 {
		t.Errorf("hit ratio of the loop = %.3f; want at least 0.7 (the best possible is about 0.9)", ratio)
	}
}

// TestLoopWarms reads a loop a tenth larger than the cache into a cold
// cache, whose sketch grows, emptied, with it: the second pass must hit
// about as often as the cache holds keys. (When a grown sketch forgot the
// counts of the keys already cached, the keys stored after the growth
// took their places, one after another, and the second pass missed
// most keys.)
func TestLoopWarms(t *testing.T) {
	const capacity = 4000
	c := newPolicyCache(capacity)
	for k := range capacity * 11 / 10 {
		c.use(k)
	}
	c.hits, c.misses = 0, 0
	for k := range capacity * 11 / 10 {
		c.use(k)
	}
	// At best, every key the cache's main area holds: 0.9 less the
	// window's 1%.
	if ratio := float64(c.hits) / float64(c.hits+c.misses); ratio < 0.85 {
		t.Errorf("hit ratio of the loop's second pass = %.3f; want at least 0.85", ratio)
	}
}

// TestGrowthKeepsCounts checks that a cached key's frequency survives
// the sketch's growth: while the counts are carried over, a few records
// for each entry stored, and after.
func TestGrowthKeepsCounts(t *testing.T) {
	c := cache.New(1 << 24)
	fill := func(k int) {
		key := policyKey(k)
		c.Fill("ns", key, policyValue, c.Token("ns", key))
	}
	k := 0
	for ; k < 1000; k++ {
		fill(k)
	}
	// hot's record is the 1001st: not among the first carried over.
	for range 10 {
		put(c, "ns", "hot", policyValue)
	}
	if e := c.Estimate("ns", "hot"); e != 10 {
		t.Fatalf("estimate of a key stored 10 times = %d; want 10", e)
	}
	// The next growth: with 1,000 entries, more records than are
	// carried for one entry stored.
	for words := c.SketchWords(); c.SketchWords() == words; k++ {
		fill(k)
	}
	if !c.Carrying() {
		t.Error("the sketch grew and carried every count over at once")
	}
	if e := c.Estimate("ns", "hot"); e < 10 {
		t.Errorf("estimate of a cached key stored 10 times, as the sketch grew = %d; want at least 10", e)
	}
	for ; k < 10_000; k++ {
		fill(k)
	}
	if c.Carrying() {
		t.Error("the counts are still being carried over at 10,000 entries, some 1,800 stores after the sketch's last growth (8,193 records at 16 a store take 513)")
	}
	if e := c.Estimate("ns", "hot"); e < 10 {
		t.Errorf("estimate of a cached key stored 10 times, after the sketch grew = %d; want at least 10", e)
	}
}

// TestFloodKeepsHotSet has the hot set read, 5 times a round, while an
// adversary reads keys it need not know the hash seed for, each 3 times,
// twice the capacity of them a round; and then, having every
// counter of the sketch at its largest (what keys chosen to collide with
// everything would do), floods again. The hot set must stay, and after
// the saturation a new set of keys read over and over must still get in
// (one candidate in 128 that ties its victim is admitted at random).
func TestFloodKeepsHotSet(t *testing.T) {
	const capacity, hot = 1000, 300
	c := newPolicyCache(capacity)
	attacker := 1 << 20
	flood := func(keys, times int) {
		for range times {
			for k := attacker; k < attacker+keys; k++ {
				c.use(k)
			}
		}
		attacker += keys
	}
	readHot := func() {
		for range 5 {
			for k := range hot {
				c.use(k)
			}
		}
	}
	for round := range 30 {
		readHot()
		if round >= 10 {
			flood(2*capacity, 3)
		}
	}
	if n := c.cached(0, hot); n < hot*90/100 {
		t.Errorf("%d of the %d hot keys cached through a flood of keys read 3 times each; want at least 90%%", n, hot)
	}

	c.SaturateSketch()
	for range 10 {
		readHot()
		flood(2*capacity, 1)
	}
	if n := c.cached(0, hot); n < hot*90/100 {
		t.Errorf("%d of the %d hot keys cached through a flood with the sketch saturated; want at least 90%%", n, hot)
	}
	// The new hot set: read 40 times, a quarter of the cache.
	const newHot, newFrom = 250, 1 << 30
	for range 40 {
		for k := newFrom; k < newFrom+newHot; k++ {
			c.use(k)
		}
	}
	if n := c.cached(newFrom, newFrom+newHot); n < newHot/10 {
		t.Errorf("%d of %d keys read 40 times each cached with the sketch saturated; want at least a tenth", n, newHot)
	}
}

// TestBurstIsCached checks that a key used in a burst right after it is
// stored hits, whatever the sketch says of it: it waits in the window.
func TestBurstIsCached(t *testing.T) {
	const capacity = 1000
	c := newPolicyCache(capacity)
	for range 5 {
		for k := range 2 * capacity {
			c.use(k)
		}
	}
	c.SaturateSketch()
	const key = 1 << 25
	c.use(key)
	c.hits = 0
	for range 10 {
		c.use(key)
	}
	if c.hits != 10 {
		t.Errorf("a key stored, then read 10 times at once, hit %d times; want 10", c.hits)
	}
}

// TestAgeByLookups checks that a cache lent its owner's hit count halves
// its sketch once 20 lookups per entry went by (hits and Fills), and one
// without a hit count does not, having seen too few increments.
func TestAgeByLookups(t *testing.T) {
	for _, lent := range []bool{true, false} {
		t.Run(fmt.Sprintf("lent=%v", lent), func(t *testing.T) {
			c := cache.New(1 << 20)
			var hits uint64
			fill := func() {
				for k := range 64 {
					key := policyKey(k)
					c.Fill("ns", key, policyValue, c.Token("ns", key))
				}
			}
			fill() // the sketch sized for them: it grows no more below
			for range 10 {
				put(c, "ns", "hot", policyValue)
			}
			hits = 64 // as many lookups before as the cache has counted
			if lent {
				c.CountHits(func() uint64 { return hits })
			}
			if e := c.Estimate("ns", "hot"); e != 10 {
				t.Fatalf("estimate of a key stored 10 times = %d; want 10", e)
			}
			// 20 lookups per entry for 65 entries, less the 64 Fills to
			// come, as hits.
			hits += 20*65 - 64
			fill()
			want := 10
			if lent {
				want = 5
			}
			if e := c.Estimate("ns", "hot"); e != want {
				t.Errorf("estimate after 20 lookups per entry = %d; want %d", e, want)
			}
		})
	}
}
