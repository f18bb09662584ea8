package cache

import "math/bits"

// sketch estimates how often each key was used lately: a count-min sketch
// of 4-bit counters, four per key, all four in one 64-byte block, so that
// recording or estimating a key touches one cache line. All counters are
// halved every so often, so that what was popular long ago fades: by the
// lookups the cache sees (age.go) when byLookups, else every sampleSize
// increments. It is guarded by Cache.mu.
//
// It raises only a key's least counters (a conservative update), which
// keeps a key that shares counters with popular ones from looking popular
// itself (bench -hitratio: a few tenths of a point on the Zipf traces).
type sketch struct {
	words      []uint64 // 8 words (a block) of 16 counters each per 8 keys of capacity
	blockMask  uint64
	increments int // since the last halving
	sampleSize int
	byLookups  bool
}

const (
	blockWords = 8
	// wordsPerEntry is the sketch's size: words of 16 counters for each
	// entry it is sized for. Two words gained 0.2-0.5 points on the Zipf
	// traces of bench -hitratio and cost 10 bytes an entry, which took
	// the heap per entry above its target of 150 bytes
	// (docs/performance.md).
	wordsPerEntry = 1
	maxCount      = 15
	// sketchMaxBlocks bounds the sketch: 1<<22 blocks of 64 bytes, 256
	// MiB, for some 32 million entries.
	sketchMaxBlocks = 1 << 22
)

// ensure sizes s for at least entries entries, and reports whether it
// grew: it is then empty, and old is what it was (the cache carries the
// counts of the keys it holds over: grow.go).
func (s *sketch) ensure(entries int) (old sketch, grew bool) {
	blocks := 1
	for blocks*blockWords < entries*wordsPerEntry && blocks < sketchMaxBlocks {
		blocks *= 2
	}
	if blocks <= len(s.words)/blockWords {
		return sketch{}, false
	}
	old = *s
	s.words = make([]uint64, blocks*blockWords)
	s.increments = 0
	s.blockMask = uint64(blocks - 1)
	s.sampleSize = 10 * blocks * blockWords
	return old, true
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

// add records n uses of the key whose hash is h: its least counters are
// raised by n, up to 15, and those above them up to the same value at
// most. No counter falls below the count of any key that shares it, so
// an estimate is never below the truth (until a halving).
func (s *sketch) add(h uint32, n int) {
	if len(s.words) == 0 || n <= 0 {
		return
	}
	x := spread(h)
	var ws [4]int
	var shs [4]uint
	least := uint64(maxCount)
	for i := range 4 {
		ws[i], shs[i] = s.slot(x, i)
		least = min(least, s.words[ws[i]]>>shs[i]&maxCount)
	}
	if least == maxCount {
		return // saturated
	}
	to := min(least+uint64(n), maxCount)
	for i := range 4 {
		if v := s.words[ws[i]] >> shs[i] & maxCount; v < to {
			s.words[ws[i]] += (to - v) << shs[i]
		}
	}
	if s.increments += int(to - least); s.increments >= s.sampleSize && !s.byLookups {
		s.halve()
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
