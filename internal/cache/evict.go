package cache

import (
	"sync/atomic"
)

// EntryOverhead is the number of bytes charged against the budget for every
// entry on top of the length of its key and value. It approximates the heap
// an entry really costs: its node and its share of the slot table
// (BenchmarkMemoryPerEntry in the opstate package measures it).
const EntryOverhead = 128

// namespaceOverhead is charged for every namespace that holds entries, on top
// of the length of its name: the namespace record and its place in the
// namespace LRU.
const namespaceOverhead = 192

// space is one namespace and the recency order of its entries.
type space struct {
	name string
	used atomic.Bool // set by readers, cleared by eviction under Cache.mu

	// guarded by Cache.mu
	//
	// order holds the namespace's entries from order[head], the least
	// recently stored or given a second chance, to the end, the most
	// recently; a removed entry leaves a nil behind until the slice is
	// compacted. n counts the entries.
	order []*node
	head  int
	n     int
}

func entryCost(key string, e Entry) int64 {
	return int64(len(key)+len(e.Value)) + EntryOverhead
}

func spaceCost(ns string) int64 {
	return int64(len(ns)) + namespaceOverhead
}

// setLocked stores e for ns and key, as a new node, and evicts down to the
// budget. It reports whether e was stored: an entry too large to share the
// budget is not, and removes the key instead.
func (c *Cache) setLocked(h uint64, ns, key string, e Entry) bool {
	cost := entryCost(key, e)
	i, old := c.findLocked(h, ns, key)
	if cost+spaceCost(ns) > c.budget/2 || len(key) > maxKey {
		if old != nil {
			c.dropLocked(i, old)
		}
		return false
	}
	var n *node
	if old != nil {
		n = newNode(h, key, old.space, e)
		c.tab.Load().storeLocked(i, n)
		c.detachLocked(old)
		c.pushLocked(n)
		c.spaces.Get(n.space.name)
		c.size += cost - entryCost(key, old.entry())
	} else {
		n = newNode(h, key, c.spaceLocked(ns), e)
		c.insertLocked(n)
		c.pushLocked(n)
		c.size += cost
	}
	c.evictLocked(n)
	return true
}

// dropLocked removes node n, found at slot i, from the table and its
// namespace, and the namespace when it becomes empty.
func (c *Cache) dropLocked(i uint64, n *node) {
	t := c.tab.Load()
	t.storeLocked(i, tombstone)
	t.live--
	c.detachLocked(n)
	c.size -= entryCost(n.key(), n.entry())
	if sp := n.space; sp.n == 0 {
		c.spaces.Remove(sp.name)
		c.size -= spaceCost(sp.name)
	}
	if t.live < len(t.slots)/16 && len(t.slots) > minSlots {
		c.rebuildLocked(t.live)
	}
}

func (c *Cache) dropSpaceLocked(ns string) {
	sp, ok := c.spaces.Peek(ns)
	if !ok {
		return
	}
	for sp.n > 0 {
		n := sp.oldest()
		c.dropLocked(c.slotLocked(n), n)
	}
}

// spaceLocked returns the namespace record for ns, creating it, and marks it
// most recently used.
func (c *Cache) spaceLocked(ns string) *space {
	if sp, ok := c.spaces.Get(ns); ok {
		return sp
	}
	sp := &space{name: clone(ns)}
	c.spaces.Add(sp.name, sp)
	c.size += spaceCost(ns)
	c.memo[memoIndex(ns)].Store(&nsHash{name: sp.name, h: c.hashNamespace(ns)})
	return sp
}

// pushLocked makes n the namespace's most recent entry.
func (c *Cache) pushLocked(n *node) {
	sp := n.space
	n.pos = int32(len(sp.order))
	sp.order = append(sp.order, n)
	sp.n++
}

// detachLocked takes n out of its namespace's order.
func (c *Cache) detachLocked(n *node) {
	sp := n.space
	sp.order[n.pos] = nil
	sp.n--
	if sp.n == 0 {
		sp.order, sp.head = nil, 0
		return
	}
	for sp.order[sp.head] == nil {
		sp.head++
	}
	// Compact once the holes outnumber the entries: each hole is then paid
	// for by the removal that made it.
	if len(sp.order) > 2*sp.n+16 {
		order := make([]*node, 0, sp.n+sp.n/4+16)
		for _, m := range sp.order[sp.head:] {
			if m != nil {
				m.pos = int32(len(order))
				order = append(order, m)
			}
		}
		sp.order, sp.head = order, 0
	}
}

// oldest returns the namespace's least recent entry; guarded by Cache.mu.
func (sp *space) oldest() *node {
	return sp.order[sp.head]
}

// evictLocked drops entries until the accounted size fits the budget: from
// the least recently used namespace, its least recently used entries, giving
// each namespace and entry used since it was last considered a second chance.
// It never drops keep, the entry being stored: an entry fits in half the
// budget, so dropping all others is always enough. Readers can set "used"
// bits again while it runs, so second chances are bounded: after two for
// every namespace and entry, it drops what it meets.
func (c *Cache) evictLocked(keep *node) {
	chances := 2 * (c.tab.Load().live + c.spaces.Len())
	for c.size > c.budget {
		_, sp, ok := c.spaces.GetOldest()
		if !ok {
			return
		}
		if sp.used.Load() && chances > 0 {
			chances--
			sp.used.Store(false)
			c.spaces.Get(sp.name)
			continue
		}
		for c.size > c.budget && sp.n > 0 {
			n := sp.oldest()
			if n == keep {
				if sp.n == 1 {
					c.spaces.Get(sp.name) // nothing else here: try other namespaces
					break
				}
				c.detachLocked(n)
				c.pushLocked(n)
				continue
			}
			if n.meta.Load()&metaUsed != 0 && chances > 0 {
				chances--
				n.meta.And(^uint32(metaUsed))
				c.detachLocked(n)
				c.pushLocked(n)
				continue
			}
			c.dropLocked(c.slotLocked(n), n)
			c.evictions.Add(1)
		}
	}
}
