package cache

import (
	"hash/maphash"
	"math"
	"math/bits"
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
	// ExpiresAt is the absolute expiry in Unix milliseconds; 0 means never.
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

// node is one cached entry. Everything a reader looks at (space, data,
// expires, hash, buf and the immutable bits of meta) is written before the
// node is published in a slot and never changed after: a write of a key
// publishes a new node.
//
// A node is exactly 64 bytes, so the allocator places it on a cache-line
// boundary and a lookup reads one line of it. A key of up to len(buf)
// bytes is held in the node; a longer one is held in data, before the
// value.
type node struct {
	space *space
	// data is the value; or, when meta has metaLong, the key followed by
	// the value.
	data    string
	expires int64
	// hash is the low half of the key's hash, enough to place the node in
	// any table (tables have fewer than 1<<32 slots).
	hash uint32
	// meta holds the key's length, metaLong, metaAbsent for a negative
	// entry, and metaUsed, which readers set without any lock and eviction
	// clears under Cache.mu.
	meta atomic.Uint32
	// pos is the node's index in space.order; guarded by Cache.mu and
	// never read by readers.
	pos int32
	buf [20]byte
}

// A node is 64 bytes: both constants overflow otherwise.
const (
	_ = uint(64 - unsafe.Sizeof(node{}))
	_ = uint(unsafe.Sizeof(node{}) - 64)
)

const (
	metaLen    = 1<<24 - 1 // the key's length
	metaLong   = 1 << 24   // the key is in data, not buf
	metaAbsent = 1 << 25
	metaUsed   = 1 << 26

	// maxKey is the longest key the cache holds.
	maxKey = metaLen
)

// key returns the node's key.
func (n *node) key() string {
	m := n.meta.Load()
	if m&metaLong != 0 {
		return n.data[:m&metaLen]
	}
	return unsafe.String(&n.buf[0], int(m&metaLen))
}

func (n *node) entry() Entry {
	m := n.meta.Load()
	v := n.data
	if m&metaLong != 0 {
		v = v[m&metaLen:]
	}
	return Entry{Value: v, ExpiresAt: n.expires, Absent: m&metaAbsent != 0}
}

// newNode returns a node for key, which is at most maxKey bytes, holding
// e. The node has its own copy of key and value, so that the cache never
// pins a larger buffer the caller sliced them from.
func newNode(h uint64, key string, sp *space, e Entry) *node {
	n := &node{space: sp, expires: e.ExpiresAt, hash: uint32(h)}
	meta := uint32(len(key))
	if len(key) <= len(n.buf) {
		copy(n.buf[:], key)
		n.data = clone(e.Value)
	} else {
		meta |= metaLong
		// Built byte by byte: key + "" would be key itself, the caller's.
		data := make([]byte, 0, len(key)+len(e.Value))
		n.data = string(append(append(data, key...), e.Value...))
	}
	if e.Absent {
		meta |= metaAbsent
	}
	n.meta.Store(meta)
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
	// tags holds one byte per slot, eight to a word: tagEmpty for a nil
	// slot, tagDead for a tombstone, else the tag of the node's hash. A
	// probe reads the tags, which take an eighth of the slots' memory, and
	// loads a slot and its node only where the tag matches. A slot is
	// stored before its tag, and a slot never becomes nil again, so a tag
	// other than tagEmpty always has a node or tombstone behind it.
	tags []atomic.Uint64
	mask uint64
	// guarded by Cache.mu
	live int // slots holding nodes
	used int // slots not nil: nodes and tombstones
}

func newTable(slots int) *table {
	return &table{
		slots: make([]atomic.Pointer[node], slots),
		tags:  make([]atomic.Uint64, (slots+7)/8),
		mask:  uint64(slots - 1),
	}
}

const (
	tagEmpty = 0
	tagDead  = 1
)

// tagOf returns the tag of a node whose hash is h: 8 bits of it, never
// tagEmpty or tagDead.
func tagOf(h uint32) uint8 {
	return max(uint8(h>>24), 2)
}

func (t *table) tag(i uint64) uint8 {
	return uint8(t.tags[i/8].Load() >> (i % 8 * 8))
}

const (
	lowBits  = 0x7F7F7F7F7F7F7F7F
	highBits = 0x8080808080808080
	oneBytes = 0x0101010101010101
)

// zeroBytes returns a word with the high bit of each byte of v that is
// zero set, and no other bit.
func zeroBytes(v uint64) uint64 {
	return ^((v&lowBits + lowBits) | v) & highBits
}

// probe returns the first slot from i on, in probe order, whose tag is tag
// or tagEmpty, and reports whether it is tag.
func (t *table) probe(i uint64, tag uint8) (uint64, bool) {
	pattern := uint64(tag) * oneBytes
	for {
		w := t.tags[i/8].Load()
		// Candidates at or after i's byte in this word.
		m := (zeroBytes(w^pattern) | zeroBytes(w)) >> (i % 8 * 8) << (i % 8 * 8)
		if m != 0 {
			j := i&^7 + uint64(bits.TrailingZeros64(m)/8)
			return j, uint8(w>>(j%8*8)) != tagEmpty
		}
		i = (i&^7 + 8) & t.mask
	}
}

// setTagLocked stores the tag of slot i; guarded by Cache.mu.
func (t *table) setTagLocked(i uint64, tag uint8) {
	w := &t.tags[i/8]
	shift := i % 8 * 8
	w.Store(w.Load()&^(0xFF<<shift) | uint64(tag)<<shift)
}

// storeLocked puts n in slot i and records its tag; guarded by Cache.mu.
func (t *table) storeLocked(i uint64, n *node) {
	t.slots[i].Store(n)
	if n == tombstone {
		t.setTagLocked(i, tagDead)
	} else {
		t.setTagLocked(i, tagOf(n.hash))
	}
}

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

	// memo holds the hashes of recently created namespaces, so that a
	// lookup hashes only its key. A namespace's hash never changes, so a
	// memo is never stale; it is replaced under mu and read without it.
	memo [numMemos]atomic.Pointer[nsHash]
}

// nsHash is a namespace and its hash.
type nsHash struct {
	name string
	h    uint64
}

const numMemos = 8

func memoIndex(ns string) int {
	if ns == "" {
		return 0
	}
	return (len(ns) + int(ns[len(ns)-1])) % numMemos
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
	var hns uint64
	if m := c.memo[memoIndex(ns)].Load(); m != nil && m.name == ns {
		hns = m.h
	} else {
		hns = c.hashNamespace(ns)
	}
	h := maphash.String(c.seed, key) ^ hns
	return h ^ h>>29
}

// hashNamespace returns the part of a key's hash that its namespace gives.
func (c *Cache) hashNamespace(ns string) uint64 {
	return maphash.String(c.seed, ns) * 0x9E3779B97F4A7C15
}

func (c *Cache) stripe(h uint64) *stripe {
	return &c.seqs[h>>56%numStripes]
}

// match reports whether n holds ns and key, whose hash is h. If it does, it
// also returns n's meta and value.
func (n *node) match(h uint64, ns, key string) (meta uint32, value string, ok bool) {
	if n.hash != uint32(h) || n == tombstone {
		return 0, "", false
	}
	meta, value = n.meta.Load(), n.data
	if int(meta&metaLen) != len(key) {
		return 0, "", false
	}
	if meta&metaLong == 0 {
		if unsafe.String(&n.buf[0], len(key)) != key {
			return 0, "", false
		}
	} else {
		if value[:len(key)] != key {
			return 0, "", false
		}
		value = value[len(key):]
	}
	return meta, value, n.space.name == ns
}

// Get returns the entry cached for ns and key, and whether there is one.
// It takes no lock and allocates nothing.
func (c *Cache) Get(ns, key string) (Entry, bool) {
	h := c.hash(ns, key)
	tag := tagOf(uint32(h))
	t := c.tab.Load()
	i := h & t.mask
	// Most lookups end at their first slot: its tag is read here, and the
	// probe runs only past a slot of another key.
	switch t.tag(i) {
	case tag:
	case tagEmpty:
		return Entry{}, false
	default:
		var found bool
		if i, found = t.probe(i, tag); !found {
			return Entry{}, false
		}
	}
	for {
		n := t.slots[i].Load()
		var meta uint32
		var value string
		ok := false
		if len(key) <= len(n.buf) {
			// A short key, compared here rather than in match.
			meta, value = n.meta.Load(), n.data
			ok = n.hash == uint32(h) && n != tombstone && meta&(metaLen|metaLong) == uint32(len(key)) &&
				unsafe.String(&n.buf[0], len(key)) == key && n.space.name == ns
		} else {
			meta, value, ok = n.match(h, ns, key)
		}
		if ok {
			// Load before store: a hot entry's flag is already set, and a
			// plain load keeps its cache line shared between cores.
			if meta&metaUsed == 0 {
				n.meta.Or(metaUsed)
			}
			if sp := n.space; !sp.used.Load() {
				sp.used.Store(true)
			}
			return Entry{Value: value, ExpiresAt: n.expires, Absent: meta&metaAbsent != 0}, true
		}
		var found bool
		if i, found = t.probe((i+1)&t.mask, tag); !found {
			return Entry{}, false
		}
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
	for sp.n > 0 {
		n := sp.oldest()
		c.dropLocked(c.slotLocked(n), n)
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
	tag := tagOf(uint32(h))
	t := c.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		switch t.tag(i) {
		case tagEmpty:
			return 0, nil
		case tag:
			n := t.slots[i].Load()
			if _, _, ok := n.match(h, ns, key); ok {
				return i, n
			}
		}
	}
}

// slotLocked returns the slot of n, which is in the table.
func (c *Cache) slotLocked(n *node) uint64 {
	t := c.tab.Load()
	i := uint64(n.hash) & t.mask
	for t.slots[i].Load() != n {
		i = (i + 1) & t.mask
	}
	return i
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

// insertLocked publishes n, whose key is not in the table, growing the
// table first when it is half full.
func (c *Cache) insertLocked(n *node) {
	t := c.tab.Load()
	if 2*(t.used+1) > len(t.slots) {
		t = c.rebuildLocked(t.live + 1)
	}
	for i := uint64(n.hash) & t.mask; ; i = (i + 1) & t.mask {
		switch s := t.slots[i].Load(); s {
		case nil:
			t.used++
			fallthrough
		case tombstone:
			t.storeLocked(i, n)
			t.live++
			return
		}
	}
}

// rebuildLocked replaces the table with one sized for live nodes at a
// third of its slots or less, without tombstones. Readers still probing the
// old table see it as it was, which is a state the cache was in during
// their Get.
func (c *Cache) rebuildLocked(live int) *table {
	old := c.tab.Load()
	size := minSlots
	for size < 3*live {
		size *= 2
	}
	t := newTable(size)
	for i := range old.slots {
		n := old.slots[i].Load()
		if n == nil || n == tombstone {
			continue
		}
		j := uint64(n.hash) & t.mask
		for t.slots[j].Load() != nil {
			j = (j + 1) & t.mask
		}
		t.storeLocked(j, n)
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
