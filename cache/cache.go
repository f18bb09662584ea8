package cache

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/simplelru"
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

// numStripes is the number of write sequences that fill tokens check.
const numStripes = 256

// minSlots is the smallest slot table.
const minSlots = 64

// Entry is what the cache holds for one key.
type Entry struct {
	// Value is the stored value; empty for a negative entry.
	Value string
	// ExpiresAt is the absolute expiry in Unix nanoseconds; 0 means never.
	ExpiresAt int64
	// Absent reports a negative entry: the key is known not to exist.
	Absent bool
}

// Token is taken before a read from the backing store and handed to
// [Cache.Fill], which applies only if the token is still current.
type Token struct {
	epoch uint64
	seq   uint64
}

// node is one cached entry. Everything a reader looks at (hash, key, ns,
// value, expires, absent, space) is written before the node is published in
// a slot and never changed after: a write of a key publishes a new node. The
// fields are laid out so that a lookup reads one cache line of the node and
// the node fits a 96-byte allocation.
type node struct {
	hash    uint64
	key     string // points into inline when the key fits there
	value   string
	expires int64
	absent  bool

	// used is set by readers without any lock and cleared by eviction
	// under Cache.mu.
	used atomic.Bool

	space *space

	// prev and next link the namespace's recency list, head first; guarded
	// by Cache.mu and never read by readers.
	prev, next *node

	// inline holds a short key, so that comparing it reads the node's own
	// memory instead of following a pointer. With it the node fills a
	// 112-byte allocation.
	inline [inlineKey]byte
}

const inlineKey = 32

func (n *node) entry() Entry {
	return Entry{Value: n.value, ExpiresAt: n.expires, Absent: n.absent}
}

// newNode returns a node for key, copying the key into the node when it
// fits and sharing old's copy otherwise.
func newNode(h uint64, key string, sp *space, e Entry) *node {
	n := &node{hash: h, value: clone(e.Value), expires: e.ExpiresAt, absent: e.Absent, space: sp}
	if len(key) <= inlineKey && key != "" {
		copy(n.inline[:], key)
		n.key = unsafe.String(&n.inline[0], len(key))
	} else {
		n.key = clone(key)
	}
	return n
}

// tombstone fills the slot of a removed node, so that probes continue past
// it.
var tombstone = &node{}

// table is an open-addressing hash table with linear probing. Readers load
// slots atomically without a lock; all stores happen under Cache.mu. A
// table is never resized in place: a new one replaces it.
type table struct {
	slots []atomic.Pointer[node]
	mask  uint64
	// guarded by Cache.mu
	live int // slots holding nodes
	used int // slots not nil: nodes and tombstones
}

func newTable(slots int) *table {
	return &table{slots: make([]atomic.Pointer[node], slots), mask: uint64(slots - 1)}
}

// space is one namespace: the recency list of its entries.
type space struct {
	name string
	used atomic.Bool // set by readers, cleared by eviction under Cache.mu

	// guarded by Cache.mu
	head, tail *node
	n          int
}

// stripe tracks the writes to one 1/numStripes share of all keys.
type stripe struct {
	// seq counts writes; incremented under Cache.mu, read without it by
	// Token.
	seq atomic.Uint64
	// pending counts writes begun and not yet ended; guarded by Cache.mu.
	pending int32
}

// Cache is a namespaced, memory-bounded cache. The zero value is not usable;
// create one with [New].
type Cache struct {
	seed   maphash.Seed
	budget int64

	// tab is the current table. Readers load it once per lookup; it is
	// replaced under mu.
	tab atomic.Pointer[table]

	// seqs count writes per stripe of keys, incremented under mu and read
	// without it by Token; epoch counts writes that touch many keys at once
	// (RemoveNamespace, Clear, namespace writes).
	seqs  [numStripes]stripe
	epoch atomic.Uint64
	// pendingSpaces counts namespace writes begun and not yet ended;
	// guarded by mu.
	pendingSpaces int
	// clears counts Clear calls; guarded by mu.
	clears uint64

	// mu serializes every change: it guards the tables' counts and slot
	// stores, size, spaces, and every list.
	mu     sync.Mutex
	size   int64
	spaces *simplelru.LRU[string, *space] // least recently used first

	evictions atomic.Uint64
}

// New returns a cache that holds at most budget bytes of keys, values and
// overhead. A budget of zero or less caches nothing.
func New(budget int64) *Cache {
	spaces, err := simplelru.NewLRU[string, *space](math.MaxInt32, nil)
	if err != nil {
		// NewLRU fails only for a size <= 0.
		panic("cache: " + err.Error())
	}
	c := &Cache{seed: maphash.MakeSeed(), budget: max(budget, 0), spaces: spaces}
	c.tab.Store(newTable(minSlots))
	return c
}

func (c *Cache) hash(ns, key string) uint64 {
	h := maphash.String(c.seed, key) ^ maphash.String(c.seed, ns)*0x9E3779B97F4A7C15
	return h ^ h>>29
}

func (c *Cache) stripe(h uint64) *stripe {
	return &c.seqs[h>>56%numStripes]
}

func (n *node) is(h uint64, ns, key string) bool {
	return n.hash == h && n != tombstone && n.key == key && n.space.name == ns
}

// Get returns the entry cached for ns and key, and whether there is one.
// It takes no lock and allocates nothing.
func (c *Cache) Get(ns, key string) (Entry, bool) {
	h := c.hash(ns, key)
	t := c.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		n := t.slots[i].Load()
		if n == nil {
			return Entry{}, false
		}
		if !n.is(h, ns, key) {
			continue
		}
		// Load before store: a hot entry's flag is already set, and a
		// plain load keeps its cache line shared between cores.
		if !n.used.Load() {
			n.used.Store(true)
		}
		if sp := n.space; !sp.used.Load() {
			sp.used.Store(true)
		}
		return n.entry(), true
	}
}

// Token returns the current write position for ns and key. Take it before
// reading the backing store and pass it to [Cache.Fill].
func (c *Cache) Token(ns, key string) Token {
	return Token{epoch: c.epoch.Load(), seq: c.stripe(c.hash(ns, key)).seq.Load()}
}

// Fill caches e for ns and key if no write to the key (or a wholesale one)
// happened since t was taken and none is in progress. It reports whether e
// was cached.
func (c *Cache) Fill(ns, key string, e Entry, t Token) bool {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stripe(h)
	if c.epoch.Load() != t.epoch || st.seq.Load() != t.seq || st.pending > 0 || c.pendingSpaces > 0 {
		return false
	}
	return c.setLocked(h, ns, key, e)
}

// Begin records that a write of ns and key is about to be committed to the
// backing store. Until the matching [Cache.End], the key is not cached and
// no Fill of it succeeds, so that every read in between goes to the store,
// which alone knows when the write took effect.
func (c *Cache) Begin(ns, key string) {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stripe(h)
	st.pending++
	st.seq.Add(1)
	if i, n := c.findLocked(h, ns, key); n != nil {
		c.dropLocked(i, n)
	}
}

// Clears returns how many times [Cache.Clear] has run. A writer reads it
// before committing and hands it to [Cache.End].
func (c *Cache) Clears() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clears
}

// End ends a write begun with [Cache.Begin]. If e is not nil, the write
// committed and e is what the key now holds; if it is nil, the write failed
// or a later write of the same key supersedes it, and the key stays
// uncached. clears is what [Cache.Clears] returned before the commit: if
// the cache has been cleared since (someone else may have written the key
// after this commit), e is not cached either.
func (c *Cache) End(ns, key string, e *Entry, clears uint64) {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stripe(h)
	st.pending--
	st.seq.Add(1)
	if e != nil && c.clears == clears {
		c.setLocked(h, ns, key, *e)
	}
}

// BeginNamespace is [Cache.Begin] for a write of every key of ns: the
// namespace is dropped and no Fill succeeds until [Cache.EndNamespace].
func (c *Cache) BeginNamespace(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pendingSpaces++
	c.epoch.Add(1)
	c.dropSpaceLocked(ns)
}

// EndNamespace ends a write begun with [Cache.BeginNamespace].
func (c *Cache) EndNamespace(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pendingSpaces--
	c.epoch.Add(1)
	c.dropSpaceLocked(ns)
}

// Put records a write of e for ns and key: it replaces whatever was cached.
// A Put of an entry too large to cache removes the key instead.
func (c *Cache) Put(ns, key string, e Entry) {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stripe(h).seq.Add(1)
	c.setLocked(h, ns, key, e)
}

// Remove forgets ns and key, so that the next Get misses.
func (c *Cache) Remove(ns, key string) {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stripe(h).seq.Add(1)
	if i, n := c.findLocked(h, ns, key); n != nil {
		c.dropLocked(i, n)
	}
}

// RemoveNamespace forgets every key of ns and invalidates every Fill in
// progress.
func (c *Cache) RemoveNamespace(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.dropSpaceLocked(ns)
}

func (c *Cache) dropSpaceLocked(ns string) {
	sp, ok := c.spaces.Peek(ns)
	if !ok {
		return
	}
	for sp.head != nil {
		n := sp.head
		i, _ := c.findLocked(n.hash, ns, n.key)
		c.dropLocked(i, n)
	}
}

// Clear forgets everything and invalidates every Fill in progress.
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clears++
	c.epoch.Add(1)
	c.tab.Store(newTable(minSlots))
	c.spaces.Purge()
	c.size = 0
}

// Stats describes the cache's contents.
type Stats struct {
	Entries    int   // entries held, negative ones included
	Namespaces int   // namespaces with at least one entry
	Bytes      int64 // bytes accounted against the budget
	Budget     int64 // the budget
	Evictions  uint64
}

// Stats returns a snapshot of the cache's size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Entries:    c.tab.Load().live,
		Namespaces: c.spaces.Len(),
		Bytes:      c.size,
		Budget:     c.budget,
		Evictions:  c.evictions.Load(),
	}
}

func entryCost(key string, e Entry) int64 {
	return int64(len(key)+len(e.Value)) + EntryOverhead
}

func spaceCost(ns string) int64 {
	return int64(len(ns)) + namespaceOverhead
}

// findLocked returns the slot and node of ns and key, or a nil node.
func (c *Cache) findLocked(h uint64, ns, key string) (uint64, *node) {
	t := c.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		n := t.slots[i].Load()
		if n == nil {
			return 0, nil
		}
		if n.is(h, ns, key) {
			return i, n
		}
	}
}

// setLocked stores e for ns and key, as a new node, and evicts down to the
// budget. It reports whether e was stored: an entry too large to share the
// budget is not, and removes the key instead.
func (c *Cache) setLocked(h uint64, ns, key string, e Entry) bool {
	cost := entryCost(key, e)
	i, old := c.findLocked(h, ns, key)
	if cost+spaceCost(ns) > c.budget/2 {
		if old != nil {
			c.dropLocked(i, old)
		}
		return false
	}
	var n *node
	if old != nil {
		n = newNode(h, old.key, old.space, e)
		c.tab.Load().slots[i].Store(n)
		c.detachLocked(old)
		c.pushLocked(n)
		c.spaces.Get(n.space.name)
		c.size += cost - entryCost(old.key, old.entry())
	} else {
		n = newNode(h, key, c.spaceLocked(ns), e)
		c.insertLocked(n)
		c.pushLocked(n)
		c.size += cost
	}
	c.evictLocked(n)
	return true
}

// insertLocked publishes n, whose key is not in the table, growing the
// table first when it is half full.
func (c *Cache) insertLocked(n *node) {
	t := c.tab.Load()
	if 2*(t.used+1) > len(t.slots) {
		t = c.rebuildLocked(t.live + 1)
	}
	for i := n.hash & t.mask; ; i = (i + 1) & t.mask {
		switch s := t.slots[i].Load(); s {
		case nil:
			t.used++
			fallthrough
		case tombstone:
			t.slots[i].Store(n)
			t.live++
			return
		}
	}
}

// rebuildLocked replaces the table with one sized for live nodes at a
// quarter load, without tombstones. Readers still probing the old table
// see it as it was, which is a state the cache was in during their Get.
func (c *Cache) rebuildLocked(live int) *table {
	old := c.tab.Load()
	size := minSlots
	for size < 4*live {
		size *= 2
	}
	t := newTable(size)
	for i := range old.slots {
		n := old.slots[i].Load()
		if n == nil || n == tombstone {
			continue
		}
		j := n.hash & t.mask
		for t.slots[j].Load() != nil {
			j = (j + 1) & t.mask
		}
		t.slots[j].Store(n)
		t.live++
		t.used++
	}
	c.tab.Store(t)
	return t
}

// dropLocked removes node n, found at slot i, from the table and its
// namespace, and the namespace when it becomes empty.
func (c *Cache) dropLocked(i uint64, n *node) {
	t := c.tab.Load()
	t.slots[i].Store(tombstone)
	t.live--
	c.detachLocked(n)
	c.size -= entryCost(n.key, n.entry())
	if sp := n.space; sp.n == 0 {
		c.spaces.Remove(sp.name)
		c.size -= spaceCost(sp.name)
	}
	if t.live < len(t.slots)/16 && len(t.slots) > minSlots {
		c.rebuildLocked(t.live)
	}
}

// clone copies s so that the cache never pins a larger buffer the caller
// sliced it from.
func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
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
	return sp
}

func (c *Cache) pushLocked(n *node) {
	sp := n.space
	n.prev, n.next = nil, sp.head
	if sp.head != nil {
		sp.head.prev = n
	} else {
		sp.tail = n
	}
	sp.head = n
	sp.n++
}

func (c *Cache) detachLocked(n *node) {
	sp := n.space
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		sp.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		sp.tail = n.prev
	}
	n.prev, n.next = nil, nil
	sp.n--
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
			n := sp.tail
			if n == keep {
				if sp.n == 1 {
					c.spaces.Get(sp.name) // nothing else here: try other namespaces
					break
				}
				c.detachLocked(n)
				c.pushLocked(n)
				continue
			}
			if n.used.Load() && chances > 0 {
				chances--
				n.used.Store(false)
				c.detachLocked(n)
				c.pushLocked(n)
				continue
			}
			i, _ := c.findLocked(n.hash, sp.name, n.key)
			c.dropLocked(i, n)
			c.evictions.Add(1)
		}
	}
}
