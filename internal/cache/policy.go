package cache

import "math/rand/v2"

// The policy: which entry goes when the cache is full, among entries of
// namespaces in use. It is W-TinyLFU's design, reading uses lazily:
//
//   - A new entry enters a small window (windowShare of the budget), which
//     lets a key used in a burst stay a while whatever its past.
//   - An entry leaving the window is a candidate for the main area; while
//     that is full, it must be used more often than the main area's
//     victim, by the frequency sketch, to take the victim's place (a tie
//     keeps the victim). A scan of keys used once thus passes through the
//     window and never displaces anything used twice.
//   - The main area is split: probation, where admitted entries start and
//     victims come from, and protected (protectedShare of the main area),
//     for entries used again while in probation.
//
// Readers take no lock and write nothing shared once an entry is hot: a
// Get sets the node's metaRef and counts the use in its metaCount (up to
// 7), by a compare-and-swap it skips when both are full, so a hot entry's
// line stays shared. The policy reads and clears metaRef when an entry
// reaches the least recent end of its segment: an entry used since it was
// last looked at moves to the most recent end (in probation: to
// protected) rather than being chosen, like a CLOCK's second chance. A
// hand going round the records, a few for each entry stored, adds the
// counts to the sketch and clears them, so that the uses of entries that
// stay put reach it; the sketch also counts every store, so a key that
// misses over and over builds up its frequency before it is cached.

const (
	windowShare    = 0.01 // of the budget
	protectedShare = 0.8  // of the main area
	// warmCount is the estimate from which a candidate that lost to its
	// victim is still admitted one time in 128: keys picked so that they
	// collide in the sketch with the hot ones could otherwise make every
	// victim look too popular to displace, and keep out all new keys.
	warmCount = 6
)

// takeRefLocked reports whether a Get used n since the last call, and
// clears the flag that says so.
func takeRefLocked(n *node) bool {
	if n.meta.Load()&metaRef == 0 {
		return false
	}
	n.meta.And(^uint32(metaRef))
	return true
}

// countHand is how many records countUsesLocked visits for each entry
// stored: the hand goes round all records once every live/countHand
// stores.
const countHand = 8

// countUsesLocked adds to the sketch the uses Gets counted in the next
// countHand records, and clears those counts. Without it, the uses of an
// entry that stays put, in protected, would never reach the sketch, and
// keys that miss (each store counts) would look more popular than the
// hits of the entries they are weighed against.
func (c *Cache) countUsesLocked() {
	for range min(countHand, len(c.recs)) {
		if c.hand >= int32(len(c.recs)) {
			c.hand = 0
		}
		n := c.recs[c.hand].n
		c.hand++
		if n == nil {
			continue
		}
		if n.meta.Load()&metaCount == 0 {
			continue
		}
		m := n.meta.And(^uint32(metaCount))
		c.sketch.add(n.hash, int(m&metaCount/countOne))
	}
}

// pendingUses returns the uses of n that Gets counted and the sketch not
// yet.
func pendingUses(n *node) int {
	return int(n.meta.Load() & metaCount / countOne)
}

// usedLocked records a use of record id's entry that happened under
// Cache.mu (a write of a cached key): in the window, it becomes the most
// recent; elsewhere, protected's most recent.
func (c *Cache) usedLocked(id int32) {
	if c.recs[id].n.seg() == segWindow {
		c.moveLocked(id, segWindow)
		return
	}
	c.moveLocked(id, segProtected)
	c.balanceProtectedLocked(nil)
}

// balanceProtectedLocked moves protected's least recent entries to
// probation until protected is within its share, giving those used since
// they were last looked at another turn (while chances last, if not nil).
func (c *Cache) balanceProtectedLocked(chances *int) {
	l := &c.segs[segProtected]
	for l.bytes > c.protectedMax && l.head != none {
		id := l.head
		if takeRefLocked(c.recs[id].n) && (chances == nil || *chances > 0) {
			if chances != nil {
				*chances--
			}
			c.moveLocked(id, segProtected)
			continue
		}
		c.moveLocked(id, segProbation)
	}
}

// victimLocked returns the record of the main area's entry to evict next:
// probation's least recent not used since it was last looked at, after
// moving those that were to protected; protected's when probation is
// empty. It is none when the main area holds nothing but keep.
func (c *Cache) victimLocked(keep *node, chances *int) int32 {
	for {
		seg := uint8(segProbation)
		if c.segs[seg].head == none {
			seg = segProtected
		}
		id := c.segs[seg].head
		if id == none {
			return none
		}
		n := c.recs[id].n
		if n == keep {
			if c.segs[seg].tail == id && (seg == segProtected || c.segs[segProtected].head == none) {
				return none // keep is all there is
			}
			// keep (a cached key just written) stays: to protected.
			c.moveLocked(id, segProtected)
			c.balanceProtectedLocked(chances)
			continue
		}
		if takeRefLocked(n) && *chances > 0 {
			*chances--
			c.moveLocked(id, segProtected)
			c.balanceProtectedLocked(chances)
			continue
		}
		return id
	}
}

// admitLocked reports whether candidate should take victim's place: it
// was used more often lately, or, being used often, by chance. Each one's
// frequency is the sketch's estimate and the uses Gets counted in its
// node that the hand did not yet add to the sketch: without them, a
// victim read since the hand last passed would weigh less than a
// candidate whose misses the sketch counted as they happened.
func (c *Cache) admitLocked(candidate, victim *node) bool {
	cf := c.estimateLocked(candidate) + pendingUses(candidate)
	vf := c.estimateLocked(victim) + pendingUses(victim)
	if cf > vf {
		return true
	}
	return cf >= warmCount && randomAdmit()
}

// drainWindowLocked moves the window's least recent entries to
// probation, as its most recent, until the window is within its share,
// and returns cands with their records appended: the candidates that
// evictOneLocked weighs against victims. Those used since they were last
// looked at stay, as the window's most recent; keep stays too.
func (c *Cache) drainWindowLocked(keep *node, chances *int, cands []int32) []int32 {
	w := &c.segs[segWindow]
	for w.bytes > c.windowMax && w.head != none {
		id := w.head
		n := c.recs[id].n
		if n == keep {
			if w.tail == id {
				break // keep is all the window holds
			}
			c.moveLocked(id, segWindow)
			continue
		}
		if takeRefLocked(n) && *chances > 0 {
			*chances--
			c.moveLocked(id, segWindow)
			continue
		}
		c.moveLocked(id, segProbation)
		cands = append(cands, id)
	}
	return cands
}

// randomAdmit admits one candidate in 128 that lost to its victim though
// it was used often (see admitLocked).
func randomAdmit() bool {
	return rand.Uint32()&127 == 0
}

// evictOneLocked evicts one entry, never keep, by the policy, and reports
// whether it found one: the victim, or the first of cands still in
// probation, whichever the sketch says was used less often lately. It
// returns the candidates left. chances bounds the turns given to entries
// read since they were last looked at, which readers can give again
// while it runs.
func (c *Cache) evictOneLocked(keep *node, chances *int, cands []int32) ([]int32, bool) {
	v := c.victimLocked(keep, chances)
	if v == none {
		// The main area is empty, or holds only keep: the window's least
		// recent other than keep.
		for id := c.segs[segWindow].head; id != none; id = c.recs[id].next {
			if c.recs[id].n != keep {
				c.evictLocked1(id)
				return cands, true
			}
		}
		return cands, false
	}
	// Candidates evicted by the namespaces' turn, or moved to protected
	// by victimLocked, or the victim itself, are no longer candidates.
	for len(cands) > 0 {
		r := &c.recs[cands[0]]
		if r.n != nil && r.n.seg() == segProbation && cands[0] != v {
			break
		}
		cands = cands[1:]
	}
	if len(cands) > 0 {
		cand := cands[0]
		cands = cands[1:]
		if !c.admitLocked(c.recs[cand].n, c.recs[v].n) {
			v = cand
		}
	}
	c.evictLocked1(v)
	return cands, true
}

// evictLocked1 evicts record id's entry.
func (c *Cache) evictLocked1(id int32) {
	n := c.recs[id].n
	c.dropLocked(c.slotLocked(n), n)
	c.evictions.Add(1)
}
