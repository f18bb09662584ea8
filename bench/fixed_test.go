package main

import "testing"

func TestFixedHits(t *testing.T) {
	// Key 2 five times, key 0 three times, key 1 twice: with room for
	// two, keys 2 and 0, hitting 4 + 2 times.
	lookups := []int32{2, 0, 1, 2, 0, 2, 1, 2, 0, 2}
	if got := fixedHits(lookups, 3, 2); got != 6 {
		t.Errorf("fixedHits = %d; want 6", got)
	}
	if got := fixedHits(lookups, 3, 5); got != 7 {
		t.Errorf("fixedHits with room for every key = %d; want 7 (every lookup but the first of each key)", got)
	}
	if got := fixedHits(lookups, 3, 0); got != 0 {
		t.Errorf("fixedHits with no room = %d; want 0", got)
	}
	// Nothing beats the optimum.
	r := newRand(98)
	for round := range 100 {
		lookups, keys, capacity := smallTrace(r)
		if f, o := fixedHits(lookups, keys, capacity), optimalHits(lookups, keys, capacity); f > o {
			t.Fatalf("round %d: the best fixed set hits %d, more than the optimum's %d", round, f, o)
		}
	}
}
