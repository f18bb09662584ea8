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
	if _, grew := s.ensure(10); !grew {
		t.Error("ensure(10) of an empty sketch did not grow it")
	}
	small := len(s.words)
	s.add(1, 3)
	old, grew := s.ensure(100_000)
	if !grew || len(s.words) < 100_000 || len(s.words) <= small {
		t.Errorf("sketch for 100,000 entries has %d words (grew %v); want at least 100,000", len(s.words), grew)
	}
	if len(old.words) != small || old.estimate(1) != 3 || s.estimate(1) != 0 {
		t.Errorf("ensure returned %d words estimating 3 uses as %d, and kept %d; want the old %d words and 3, and an empty sketch",
			len(old.words), old.estimate(1), s.estimate(1), small)
	}
	big := len(s.words)
	if _, grew := s.ensure(10); grew || len(s.words) != big {
		t.Errorf("sketch shrank from %d to %d words", big, len(s.words))
	}
}

// TestAdmitCountsPending checks that the uses Gets counted in a node and
// the sketch not yet weigh in admission: a victim read 3 times since the
// hand last passed is kept against a candidate whose 2 misses the sketch
// counted (without them, the sketch gives the victim 1).
func TestAdmitCountsPending(t *testing.T) {
	victim, cand := &node{hash: 1}, &node{hash: 2}
	var c Cache
	c.sketch.ensure(64)
	c.sketch.add(victim.hash, 1)
	c.sketch.add(cand.hash, 2)
	if !c.admitLocked(cand, victim) {
		t.Fatal("a candidate used twice is not admitted over a victim used once")
	}
	for range 3 {
		victim.meta.Store(used(victim.meta.Load()))
	}
	if c.admitLocked(cand, victim) {
		t.Error("a candidate used twice is admitted over a victim used four times, three of them counted in its node")
	}
}

// TestSketchConservative checks that a use raises only a key's least
// counters: a counter it shares with a key used more keeps that key's
// count, so the other key's estimate stays its own.
func TestSketchConservative(t *testing.T) {
	var s sketch
	s.ensure(64)
	rng := rand.New(rand.NewPCG(5, 6))
	a := rng.Uint32()
	wa, sha := s.slot(spread(a), 0)
	var b uint32
	for {
		b = rng.Uint32()
		if w, sh := s.slot(spread(b), 0); w == wa && sh == sha {
			break
		}
	}
	s.add(a, 5)
	s.add(b, 1)
	if got := s.words[wa] >> sha & maxCount; got != 5 {
		t.Errorf("counter shared by a key used 5 times and one used once = %d; want 5", got)
	}
	if e := s.estimate(b); e != 1 {
		t.Errorf("estimate of the key used once = %d; want 1", e)
	}
	s.add(b, 7)
	if got := s.words[wa] >> sha & maxCount; got != 8 {
		t.Errorf("shared counter after the second key's 8th use = %d; want 8", got)
	}
}
