package cache

// SaturateSketch sets every counter of c's frequency sketch to its
// largest value, as keys chosen to collide with every other key would.
func (c *Cache) SaturateSketch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.sketch.words {
		c.sketch.words[i] = ^uint64(0)
	}
}

// SketchSlots returns where c's frequency sketch counts ns and key: the
// word and shift of each of its four counters.
func (c *Cache) SketchSlots(ns, key string) [4][2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := spread(uint32(c.hash(ns, key)))
	var out [4][2]int
	for i := range 4 {
		w, sh := c.sketch.slot(x, i)
		out[i] = [2]int{w, int(sh)}
	}
	return out
}

// Estimate returns the frequency c's sketch estimates for ns and key (and
// its old sketch, while a growth is carried over and the key's record
// was not yet).
func (c *Cache) Estimate(ns, key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hash(ns, key)
	if _, n := c.findLocked(h, ns, key); n != nil {
		return c.estimateLocked(n)
	}
	return c.sketch.estimate(uint32(h))
}

// Contains reports whether ns and key are cached, without counting a use.
func (c *Cache) Contains(ns, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, n := c.findLocked(c.hash(ns, key), ns, key)
	return n != nil
}

// SketchWords returns the size of c's frequency sketch, in words.
func (c *Cache) SketchWords() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sketch.words)
}

// Carrying reports whether c's sketch grew and is still carrying the
// cached entries' counts over.
func (c *Cache) Carrying() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.grow.old.words) > 0
}
