package cache

// The sketch forgets by halving its counters, so that what was popular
// long ago gives way to what is popular now. How often matters: too
// seldom, and a hot set that changed stays out behind the old one's
// counts; too often, and a key used now and then looks no more popular
// than one a scan reads once. W-TinyLFU halves once every so many
// lookups per entry; the cache sees its misses (the Fills) but not its
// hits, which Gets count nowhere it could read without a shared write. So
// its owner, which counts them anyway, may lend it its count (CountHits):
// the sketch then halves once every agePeriod lookups per entry cached.
// Without, it halves once its counters took ten increments each on
// average (sketch.go), which, uses being counted only up to 7 a hand's
// round, is slower.

const (
	// agePeriod is how many lookups, per entry cached, make the sketch
	// halve once (bench -hitratio: 10 cost the scan and Zipf traces what
	// it gave the shifting one; 20 is the least that kept each at or
	// above otter's, 25 lost the shift).
	agePeriod = 20
	// ageCheck is how many Fills go between two reads of the hit count.
	ageCheck = 64
)

// ager is the state of the sketch's aging by lookups; guarded by
// Cache.mu.
type ager struct {
	hits      func() uint64 // the owner's count of Gets that hit; nil: none
	fills     uint64        // Fills so far
	lastHits  uint64        // hits() at the last halving
	lastFills uint64        // fills at the last halving
	unchecked int           // Fills since hits() was last read
}

// CountHits lends the cache its owner's count of the Gets that hit: f
// returns how many there were so far, and never decreases. The cache then
// ages its frequency sketch by lookups (age.go). f is called under the
// cache's lock, once every few dozen Fills, and must not call the cache.
func (c *Cache) CountHits(f func() uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.age = ager{hits: f, lastHits: f(), fills: c.age.fills, lastFills: c.age.fills}
	c.sketch.byLookups = true
}

// ageLocked counts a Fill, and halves the sketch once agePeriod lookups
// per entry cached went by since it last did.
func (c *Cache) ageLocked() {
	a := &c.age
	a.fills++
	if a.hits == nil {
		return
	}
	if a.unchecked++; a.unchecked < ageCheck {
		return
	}
	a.unchecked = 0
	hits := a.hits()
	lookups := hits - a.lastHits + a.fills - a.lastFills
	if lookups < agePeriod*uint64(max(c.tab.Load().live, minSlots)) {
		return
	}
	c.halveLocked()
	a.lastHits, a.lastFills = hits, a.fills
}
