package cache

import (
	"math/rand/v2"
	"testing"
)

// TestSketchCounts checks the sketch's estimates against the true counts
// of keys used different numbers of times: never below (a count-min
// sketch only overestimates), rarely above by much, at most 15, and
// halved once its sample is full.
func TestSketchCounts(t *testing.T) {
	var s sketch
	s.ensure(1024)
	rng := rand.New(rand.NewPCG(3, 4))
	truth := make(map[uint32]int)
	for range 1024 {
		h, n := rng.Uint32(), rng.IntN(8)
		truth[h] += n
		s.add(h, n)
	}
	over := 0
	for h, n := range truth {
		e := s.estimate(h)
		if e < min(n, maxCount) {
			t.Fatalf("estimate of a key used %d times = %d; want at least that", n, e)
		}
		if e > n+2 {
			over++
		}
	}
	if over > len(truth)/20 {
		t.Errorf("%d of %d estimates exceed the true count by more than 2; want at most 5%%", over, len(truth))
	}
	var hot uint32 = 7
	s.add(hot, 40)
	if e := s.estimate(hot); e != maxCount {
		t.Errorf("estimate of a key used 40 times = %d; want %d", e, maxCount)
	}
	// Fill the sample: every counter is halved once.
	before := s.estimate(hot)
	for s.increments != 0 && s.increments < s.sampleSize-1 {
		s.add(rng.Uint32(), 1)
	}
	s.add(rng.Uint32(), 1)
	if e := s.estimate(hot); e > before/2+1 || e < before/2 {
		t.Errorf("estimate of the hot key after the sample filled = %d; want about %d", e, before/2)
	}
}

// TestSketchGrows checks that the sketch grows with the entries it is
// sized for, and never shrinks.
func TestSketchGrows(t *testing.T) {
	var s sketch
	if s.estimate(1) != 0 {
		t.Fatal("an empty sketch estimates a use")
	}
	s.add(1, 1) // no table yet: nothing to do
	s.ensure(10)
	small := len(s.words)
	s.ensure(100_000)
	if len(s.words) < 100_000 || len(s.words) <= small {
		t.Errorf("sketch for 100,000 entries has %d words; want at least 100,000", len(s.words))
	}
	big := len(s.words)
	s.ensure(10)
	if len(s.words) != big {
		t.Errorf("sketch shrank from %d to %d words", big, len(s.words))
	}
}
