package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// The hit-ratio traces' sizes.
const (
	zipfKeys     = 100_000 // K: the keys a Zipf trace draws from
	traceLookups = 400_000 // Zipf lookups of every trace but loop's
	scanEvery    = 50_000  // Zipf lookups between two scans
	scanLen      = 20_000  // keys of one scan: zipfKeys..zipfKeys+scanLen-1
	loopCapacity = 10_000  // C of the loop trace; it cycles over C*1.1 keys
	traceValLen  = 16      // bytes of every value in the opstate runs
)

// trace is a sequence of lookups, each a key number in 0..keys-1, and the
// cache size, in entries, it is run at.
type trace struct {
	name     string
	capacity int
	keys     int // every key number is below keys
	lookups  []int32
}

// traceKey is the key of key number i: every key of a trace has the same
// length, so that every cached entry costs the same.
func traceKey(i int) string { return fmt.Sprintf("key-%07d", i) }

// traceValue is the value of key number i, of traceValLen bytes.
func traceValue(i int) string { return fmt.Sprintf("val-%012d", i) }

// zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^s,
// for any s >= 0 (math/rand's Zipf needs s > 1), by inverting the
// cumulative distribution: a uniform draw is looked up by binary search in
// the cumulative weights.
type zipf struct {
	cum []float64 // cum[r] is the total weight of ranks 0..r
}

func newZipf(n int, s float64) *zipf {
	z := &zipf{cum: make([]float64, n)}
	total := 0.0
	for r := range n {
		total += math.Pow(float64(r+1), -s)
		z.cum[r] = total
	}
	return z
}

// rank returns a rank drawn with r.
func (z *zipf) rank(r *rand.Rand) int {
	u := r.Float64() * z.cum[len(z.cum)-1]
	// The first rank whose cumulative weight exceeds u.
	return sort.Search(len(z.cum)-1, func(i int) bool { return z.cum[i] > u })
}

// zipfLookups returns n lookups of perm's keys, the key of rank i being
// perm[i], drawn with z.
func zipfLookups(r *rand.Rand, z *zipf, perm []int, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(perm[z.rank(r)])
	}
	return out
}

// newRand returns the generator of the trace numbered seed: each trace has
// its own, so that a trace is the same whichever others are generated.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6f7073746174)) // "opstat"
}

// traceSpec is one trace, generated on demand by gen.
type traceSpec struct {
	name     string
	capacity int
	gen      func() trace
	note     string // its parameters, for the table's notes
}

// traceSpecs returns every hit-ratio trace, in the table's order.
func traceSpecs() []traceSpec {
	var specs []traceSpec
	// The lookups of one exponent are generated once for both sizes.
	for i, s := range []float64{0.8, 1.0, 1.2} {
		var lookups []int32
		gen := func() []int32 {
			if lookups == nil {
				r := newRand(uint64(i + 1))
				lookups = zipfLookups(r, newZipf(zipfKeys, s), r.Perm(zipfKeys), traceLookups)
			}
			return lookups
		}
		name := fmt.Sprintf("zipf-%.1f", s)
		for _, pct := range []int{1, 10} {
			c := zipfKeys * pct / 100
			specs = append(specs, traceSpec{
				name:     fmt.Sprintf("%s/%d%%", name, pct),
				capacity: c,
				gen:      func() trace { return trace{capacity: c, keys: zipfKeys, lookups: gen()} },
				note: fmt.Sprintf("%d lookups of %d keys, Zipf s = %.1f over a random permutation of the keys; cache 1%% and 10%% of the keys",
					traceLookups, zipfKeys, s),
			})
		}
	}
	specs = append(specs,
		traceSpec{
			name: "scan", capacity: zipfKeys / 10,
			gen: func() trace { return scanTrace(newRand(4), zipfKeys/10) },
			note: fmt.Sprintf("zipf-1.0's kind of lookups (%d of %d keys), and after every %d of them a sequential pass over %d other keys, the same each time and never looked up otherwise (%d lookups in all); cache %d",
				traceLookups, zipfKeys, scanEvery, scanLen, traceLookups+traceLookups/scanEvery*scanLen, zipfKeys/10),
		},
		traceSpec{
			name: "shift", capacity: zipfKeys / 10,
			gen: func() trace { return shiftTrace(newRand(5), zipfKeys/10) },
			note: fmt.Sprintf("%d lookups of %d keys, Zipf s = 1.0; the second half over another random permutation of the keys, so that the hot keys change halfway; cache %d",
				traceLookups, zipfKeys, zipfKeys/10),
		},
		traceSpec{
			name: "loop", capacity: loopCapacity,
			gen: func() trace { return loopTrace(loopCapacity, traceLookups) },
			note: fmt.Sprintf("keys 0..%d looked up in order, over and over (%d lookups); cache %d, 10%% smaller than the loop",
				loopCapacity*11/10-1, traceLookups, loopCapacity),
		},
	)
	for i := range specs {
		sp := &specs[i]
		gen := sp.gen
		sp.gen = func() trace {
			t := gen()
			t.name = sp.name
			return t
		}
	}
	return specs
}

// scanTrace is Zipf s = 1.0 lookups of zipfKeys keys, with a sequential
// pass over keys zipfKeys..zipfKeys+scanLen-1 after every scanEvery of
// them.
func scanTrace(r *rand.Rand, capacity int) trace {
	zl := zipfLookups(r, newZipf(zipfKeys, 1.0), r.Perm(zipfKeys), traceLookups)
	out := make([]int32, 0, len(zl)+len(zl)/scanEvery*scanLen)
	for lo := 0; lo < len(zl); lo += scanEvery {
		out = append(out, zl[lo:min(lo+scanEvery, len(zl))]...)
		if lo+scanEvery <= len(zl) {
			for k := range scanLen {
				out = append(out, int32(zipfKeys+k))
			}
		}
	}
	return trace{capacity: capacity, keys: zipfKeys + scanLen, lookups: out}
}

// shiftTrace is Zipf s = 1.0 lookups whose second half ranks the keys by
// another permutation.
func shiftTrace(r *rand.Rand, capacity int) trace {
	z := newZipf(zipfKeys, 1.0)
	first := zipfLookups(r, z, r.Perm(zipfKeys), traceLookups/2)
	second := zipfLookups(r, z, r.Perm(zipfKeys), traceLookups-traceLookups/2)
	return trace{capacity: capacity, keys: zipfKeys, lookups: append(first, second...)}
}

// loopTrace is n lookups of keys 0..capacity*1.1-1 in order, repeated.
func loopTrace(capacity, n int) trace {
	period := capacity * 11 / 10
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i % period)
	}
	return trace{capacity: capacity, keys: period, lookups: out}
}
