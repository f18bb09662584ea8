package cache

// The sketch grows with the entries cached (sketch.ensure), and a grown
// sketch starts empty: its counters are laid out anew. Were the counts of
// the cached entries simply lost, then in a cache filling up every entry
// stored before a growth would look unused next to those stored after,
// and lose its place to them one after another (TestLoopWarms: a
// loop's second pass hit about half its keys rather than 9 in 10). So the
// old sketch is kept while the records are carried over, carryHand of
// them for each entry stored: each cached entry's estimate in the old
// sketch is added to the new one. Until its record is carried, an entry's
// frequency is the sum of its estimates in both. Keys not cached lose
// their counts, which their next lookups rebuild.
//
// A sketch not lent a hit count halves itself (sketch.go), the new one
// alone: counts carried after that weigh up to twice their share until
// the next halving.
//
// Carrying all records at once would hold Cache.mu, and every Fill and
// write waiting on it, for as long as it takes to read two sketches at
// random for every entry cached.

// carryHand is how many records are carried over for each entry stored:
// the sketch grows when the entries cached double, by then all records
// were carried many times over.
const carryHand = 16

// grower is the state of the sketch's growth; guarded by Cache.mu.
type grower struct {
	old  sketch // the sketch before it grew; empty once every record was carried
	next int32  // the first record not carried yet
}

// ensureSketchLocked sizes the sketch for the entries cached, and when it
// grows, begins carrying the cached entries' counts over.
func (c *Cache) ensureSketchLocked() {
	old, grew := c.sketch.ensure(c.tab.Load().live)
	if !grew || len(old.words) == 0 {
		return
	}
	c.carryLocked(len(c.recs)) // the last growth's, if not done yet
	c.grow = grower{old: old}
}

// carryLocked carries up to n records' counts to the sketch.
func (c *Cache) carryLocked(n int) {
	g := &c.grow
	if len(g.old.words) == 0 {
		return
	}
	for ; n > 0 && int(g.next) < len(c.recs); n-- {
		if r := &c.recs[g.next]; r.n != nil {
			c.sketch.add(r.n.hash, g.old.estimate(r.n.hash))
		}
		g.next++
	}
	if int(g.next) >= len(c.recs) {
		*g = grower{}
	}
}

// estimateLocked returns how often n's key was used lately by the sketch:
// while the sketch's growth is carried over and n's record was not yet,
// its estimates before and since the growth.
func (c *Cache) estimateLocked(n *node) int {
	e := c.sketch.estimate(n.hash)
	if g := &c.grow; len(g.old.words) > 0 && n.pos >= g.next {
		e += g.old.estimate(n.hash)
	}
	return e
}

// halveLocked halves the sketch's counters, and the old sketch's while
// it is carried over.
func (c *Cache) halveLocked() {
	c.sketch.halve()
	if len(c.grow.old.words) > 0 {
		c.grow.old.halve()
	}
}
