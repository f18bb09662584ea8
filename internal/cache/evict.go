package cache

import "sync/atomic"

// EntryOverhead is the number of bytes charged against the budget for every
// entry on top of the length of its key and value. It approximates the heap
// an entry really costs: its node, its record in the eviction lists, its
// share of the slot table and of the frequency sketch
// (BenchmarkMemoryPerEntry in the opstate package measures it).
const EntryOverhead = 160

// namespaceOverhead is charged for every namespace that holds entries, on top
// of the length of its name: the namespace record and its place in the
// namespace LRU.
const namespaceOverhead = 192

// The policy (policy.go) keeps entries in three segments.
const (
	segWindow    = iota // new entries, least recent first
	segProbation        // admitted, not used since
	segProtected        // admitted and used since
	numSegs
)

// none is the id of no record.
const none = -1

// rec is an entry's place in the eviction lists: its segment's (which
// segment, the node's meta says: metaSeg), and its namespace's. The
// node's pos is the record's id, an index in Cache.recs; a free record is
// linked by next into Cache.free.
type rec struct {
	n              *node
	prev, next     int32 // in its segment, from the least recent
	nsPrev, nsNext int32 // in its namespace, from the oldest stored
}

// list is a doubly linked list of records, threaded through rec.prev and
// rec.next.
type list struct {
	head, tail int32 // the least and the most recent; none when empty
	bytes      int64 // the entries' accounted bytes
}

// space is one namespace and its entries.
type space struct {
	name string
	used atomic.Bool // set by readers, cleared by eviction under Cache.mu

	// guarded by Cache.mu: the namespace's records, oldest stored first
	// (threaded through rec.nsPrev and rec.nsNext), and how many.
	head, tail int32
	n          int
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
		n.pos = old.pos
		n.setSegLocked(old.seg())
		c.recs[n.pos].n = n
		c.tab.Load().storeLocked(i, n)
		c.segs[n.seg()].bytes += cost - entryCost(key, old.entry())
		c.size += cost - entryCost(key, old.entry())
		c.spaces.Get(n.space.name)
		c.usedLocked(n.pos) // a write of a cached key is a use of it
	} else {
		n = newNode(h, key, c.spaceLocked(ns), e)
		c.insertLocked(n)
		n.pos = c.newRecLocked(n)
		c.pushLocked(segWindow, n.pos, cost)
		c.nsPushLocked(n.pos)
		c.size += cost
		c.ensureSketchLocked()
		c.carryLocked(carryHand)
		c.countUsesLocked()
	}
	c.sketch.add(n.hash, 1)
	c.evictLocked(n)
	return true
}

// dropLocked removes node n, found at slot i, from the table, the lists
// and its namespace, and the namespace when it becomes empty.
func (c *Cache) dropLocked(i uint64, n *node) {
	t := c.tab.Load()
	t.storeLocked(i, tombstone)
	t.live--
	cost := entryCost(n.key(), n.entry())
	c.unlinkLocked(n.pos, cost)
	c.nsUnlinkLocked(n.pos)
	c.freeRecLocked(n.pos)
	c.size -= cost
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
		n := c.recs[sp.head].n
		c.dropLocked(c.slotLocked(n), n)
	}
}

// spaceLocked returns the namespace record for ns, creating it, and marks it
// most recently used.
func (c *Cache) spaceLocked(ns string) *space {
	if sp, ok := c.spaces.Get(ns); ok {
		return sp
	}
	sp := &space{name: clone(ns), head: none, tail: none}
	c.spaces.Add(sp.name, sp)
	c.size += spaceCost(ns)
	c.memo[memoIndex(ns)].Store(&nsHash{name: sp.name, h: c.hashNamespace(ns)})
	return sp
}

// resetListsLocked empties the records and the segments.
func (c *Cache) resetListsLocked() {
	c.recs, c.free, c.hand = nil, none, 0
	c.grow = grower{}
	for i := range c.segs {
		c.segs[i] = list{head: none, tail: none}
	}
}

// newRecLocked returns the id of a new record of n, linked nowhere.
func (c *Cache) newRecLocked(n *node) int32 {
	id := c.free
	if id == none {
		id = int32(len(c.recs))
		c.recs = append(c.recs, rec{})
	} else {
		c.free = c.recs[id].next
	}
	c.recs[id] = rec{n: n, prev: none, next: none, nsPrev: none, nsNext: none}
	return id
}

// freeRecLocked returns record id, unlinked, to the free list.
func (c *Cache) freeRecLocked(id int32) {
	c.recs[id] = rec{next: c.free}
	c.free = id
}

// pushLocked appends record id, of an entry of cost bytes, to segment seg
// as its most recent.
func (c *Cache) pushLocked(seg uint8, id int32, cost int64) {
	l := &c.segs[seg]
	r := &c.recs[id]
	r.n.setSegLocked(seg)
	r.prev, r.next = l.tail, none
	if l.tail == none {
		l.head = id
	} else {
		c.recs[l.tail].next = id
	}
	l.tail = id
	l.bytes += cost
}

// unlinkLocked takes record id, of an entry of cost bytes, out of its
// segment.
func (c *Cache) unlinkLocked(id int32, cost int64) {
	r := &c.recs[id]
	l := &c.segs[r.n.seg()]
	if r.prev == none {
		l.head = r.next
	} else {
		c.recs[r.prev].next = r.next
	}
	if r.next == none {
		l.tail = r.prev
	} else {
		c.recs[r.next].prev = r.prev
	}
	r.prev, r.next = none, none
	l.bytes -= cost
}

// moveLocked makes record id the most recent of segment seg.
func (c *Cache) moveLocked(id int32, seg uint8) {
	cost := c.costOf(id)
	c.unlinkLocked(id, cost)
	c.pushLocked(seg, id, cost)
}

// costOf returns the accounted bytes of record id's entry.
func (c *Cache) costOf(id int32) int64 {
	n := c.recs[id].n
	return entryCost(n.key(), n.entry())
}

// nsPushLocked appends record id to its namespace's entries.
func (c *Cache) nsPushLocked(id int32) {
	r := &c.recs[id]
	sp := r.n.space
	r.nsPrev, r.nsNext = sp.tail, none
	if sp.tail == none {
		sp.head = id
	} else {
		c.recs[sp.tail].nsNext = id
	}
	sp.tail = id
	sp.n++
}

// nsUnlinkLocked takes record id out of its namespace's entries.
func (c *Cache) nsUnlinkLocked(id int32) {
	r := &c.recs[id]
	sp := r.n.space
	if r.nsPrev == none {
		sp.head = r.nsNext
	} else {
		c.recs[r.nsPrev].nsNext = r.nsNext
	}
	if r.nsNext == none {
		sp.tail = r.nsPrev
	} else {
		c.recs[r.nsNext].nsPrev = r.nsPrev
	}
	sp.n--
}

// evictLocked moves the window's least recent entries beyond its share
// to probation, as candidates, then drops entries until the accounted size
// fits the budget. It never drops keep, the entry being stored: an entry
// fits in half the budget, so dropping all others is always enough.
//
// Namespaces go first that nobody read since eviction last looked at them
// (the conversations that ended), least recently stored first, each
// looked at once a call: a namespace read since is passed over, and its
// "used" flag cleared. keep's namespace, being written, is not one of
// them. Once every namespace was passed over, the policy (policy.go)
// picks each victim among all entries.
func (c *Cache) evictLocked(keep *node) {
	chances := 2 * (c.tab.Load().live + c.spaces.Len())
	c.cands = c.drainWindowLocked(keep, &chances, c.cands[:0])
	cands := c.cands
	looked := 0
	for c.size > c.budget {
		if looked < c.spaces.Len() {
			_, sp, _ := c.spaces.GetOldest()
			looked++
			if sp == keep.space || sp.used.Load() {
				sp.used.Store(false)
				c.spaces.Get(sp.name)
				continue
			}
			for c.size > c.budget && sp.n > 0 {
				n := c.recs[sp.head].n
				c.dropLocked(c.slotLocked(n), n)
				c.evictions.Add(1)
			}
			continue
		}
		var ok bool
		if cands, ok = c.evictOneLocked(keep, &chances, cands); !ok {
			return
		}
	}
}
