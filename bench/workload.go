package main

import (
	"fmt"
	"math/rand/v2"
)

// The workload every implementation runs.
const (
	namespace = "flags"
	numKeys   = 10_000
	valueLen  = 32
	ringLen   = 1021 // values a Set cycles through; prime, so a key rarely gets its previous value back
)

// workload is the data of every benchmark, computed once so that each
// implementation looks up the same keys in the same order and no benchmark
// builds a string inside its timed loop.
type workload struct {
	// order is the fixed pseudo-random order in which keys are visited:
	// operation j touches key number order[j%numKeys].
	order []int
	// pos is the inverse of order: key number i is visited at position
	// pos[i]. Every store is filled in key-number order, the same for all
	// and unrelated to the visiting order, so that no store finds its
	// entries laid out in memory in the order the benchmark reads them.
	pos []int

	values []string // values[i] is the value of key number i

	// The same keys in visiting order, in the form each API takes.
	keys, missing          []string // "key-00042", "missing-00042": for opstate and sqlite-only
	composite, compMissing []string // namespace+"\x00"+key: for golang-lru, otter, buntdb
	boltKeys, boltMissing  [][]byte // bucket-relative keys: for bbolt
	ring                   []string // values written by the set benchmarks
}

func keyName(i int) string     { return fmt.Sprintf("key-%05d", i) }
func missingName(i int) string { return fmt.Sprintf("missing-%05d", i) }
func valueOf(i int) string     { return fmt.Sprintf("value-%026d", i) }
func ringValue(i int) string   { return fmt.Sprintf("rewrite-%024d", i) }

func composite(key string) string { return namespace + "\x00" + key }

func newWorkload() *workload {
	w := &workload{order: rand.New(rand.NewPCG(1, 2)).Perm(numKeys), pos: make([]int, numKeys)}
	for j, i := range w.order {
		w.pos[i] = j
	}
	for i := range numKeys {
		w.values = append(w.values, valueOf(i))
	}
	for _, i := range w.order {
		k, m := keyName(i), missingName(i)
		w.keys = append(w.keys, k)
		w.missing = append(w.missing, m)
		w.composite = append(w.composite, composite(k))
		w.compMissing = append(w.compMissing, composite(m))
		w.boltKeys = append(w.boltKeys, []byte(k))
		w.boltMissing = append(w.boltMissing, []byte(m))
	}
	for i := range ringLen {
		w.ring = append(w.ring, ringValue(i))
	}
	for _, s := range [][]string{w.values, w.ring} {
		for _, v := range s {
			if len(v) != valueLen {
				panic(fmt.Sprintf("value %q is %d bytes, want %d", v, len(v), valueLen))
			}
		}
	}
	return w
}
