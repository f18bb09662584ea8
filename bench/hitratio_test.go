package main

import (
	"path/filepath"
	"testing"
)

// TestOpstateCapacity checks that the opstate runner's Store caches
// exactly the capacity it is given, in entries, and that its hits are
// counted right: a cache that holds every key misses once per key.
func TestOpstateCapacity(t *testing.T) {
	const keys = 2000
	tk := newTraceKeys(keys)
	db := filepath.Join(t.TempDir(), "hit.db")
	if err := fillHitStore(db, tk); err != nil {
		t.Fatal(err)
	}
	r := newRand(1)
	lookups := zipfLookups(r, newZipf(keys, 0.8), r.Perm(keys), 6000)
	distinct := map[int32]bool{}
	for _, k := range lookups {
		distinct[k] = true
	}
	for _, capacity := range []int{50, 123, 1000} {
		tr := trace{name: "test", capacity: capacity, keys: keys, lookups: lookups}
		hits, entries, err := opstateHits(db, tk, tr)
		if err != nil {
			t.Fatal(err)
		}
		if entries != capacity {
			t.Errorf("capacity %d: the Store caches %d entries after the trace; want %d", capacity, entries, capacity)
		}
		if hits <= 0 || hits > len(lookups)-len(distinct) {
			t.Errorf("capacity %d: %d hits; want between 1 and %d", capacity, hits, len(lookups)-len(distinct))
		}
	}
	tr := trace{name: "all", capacity: keys, keys: keys, lookups: lookups}
	hits, entries, err := opstateHits(db, tk, tr)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(lookups) - len(distinct); hits != want || entries != len(distinct) {
		t.Errorf("capacity of every key: %d hits, %d entries; want %d and %d", hits, entries, want, len(distinct))
	}
}
