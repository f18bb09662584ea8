package cache

import "math/bits"

// sketch estimates how often each key was used lately: a count-min sketch
// of 4-bit counters, four per key, all four in one 64-byte block, so that
// recording or estimating a key touches one cache line. All counters are
// halved every so often, so that what was popular long ago fades: by the
// lookups the cache sees (age.go) when byLookups, else every sampleSize
// increments. It is guarded by Cache.mu.
type sketch struct {
	words      []uint64 // 8 words (a block) of 16 counters each per 8 keys of capacity
	blockMask  uint64
	increments int // since the last halving
	sampleSize int
	byLookups  bool
}

const (
	blockWords = 8
	maxCount   = 15
	// sketchMaxBlocks bounds the sketch: 1<<22 blocks of 64 bytes, 256
	// MiB, for some 32 million entries.
	sketchMaxBlocks = 1 << 22
)

// ensure sizes s for at least entries entries, emptying it when it grows
// (bench -hitratio: a grown sketch holding copies of the old one, whose
// counters many more keys shared, kept their overestimates and lost the
// Zipf traces at 10% half a point).
func (s *sketch) ensure(entries int) {
	blocks := 1
	for blocks*blockWords < entries && blocks < sketchMaxBlocks {
		blocks *= 2
	}
	if blocks <= len(s.words)/blockWords {
		return
	}
	s.words = make([]uint64, blocks*blockWords)
	s.increments = 0
	s.blockMask = uint64(blocks - 1)
	s.sampleSize = 10 * blocks * blockWords
}

// spread mixes a key's 32-bit hash into the 64 bits the sketch indexes by.
func spread(h uint32) uint64 {
	x := uint64(h) * 0x9E3779B97F4A7C15
	return x ^ x>>29 ^ bits.RotateLeft64(x, 17)
}

// slot returns the word and the shift of counter i (0..3) of a key whose
// spread hash is x: its block by the low bits, and in the block, one word
// of each pair of words and one of its 16 counters by the high bits.
func (s *sketch) slot(x uint64, i int) (word int, shift uint) {
	block := x & s.blockMask
	sel := x >> (32 + 8*i)
	return int(block*blockWords) + 2*i + int(sel&1), uint(sel>>1&15) * 4
}

// add records n uses of the key whose hash is h.
func (s *sketch) add(h uint32, n int) {
	if len(s.words) == 0 || n <= 0 {
		return
	}
	x := spread(h)
	for range n {
		grew := false
		for i := range 4 {
			w, sh := s.slot(x, i)
			if s.words[w]>>sh&maxCount < maxCount {
				s.words[w] += 1 << sh
				grew = true
			}
		}
		if !grew {
			return // saturated
		}
		if s.increments++; s.increments >= s.sampleSize && !s.byLookups {
			s.halve()
		}
	}
}

// estimate returns how often the key whose hash is h was used lately: the
// least of its four counters, 0 to 15.
func (s *sketch) estimate(h uint32) int {
	if len(s.words) == 0 {
		return 0
	}
	x := spread(h)
	least := maxCount
	for i := range 4 {
		w, sh := s.slot(x, i)
		least = min(least, int(s.words[w]>>sh&maxCount))
	}
	return least
}

// halve halves every counter.
func (s *sketch) halve() {
	for i, w := range s.words {
		s.words[i] = w >> 1 & 0x7777777777777777
	}
	s.increments /= 2
}
