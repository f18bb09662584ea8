package cache

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// minSlots is the smallest slot table.
const minSlots = 64

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
	// entry, metaRef and metaCount, which readers set and count (up to 7)
	// without any lock and the policy takes under Cache.mu, and metaSeg,
	// the policy's segment of the node.
	meta atomic.Uint32
	// pos is the id of the node's record in Cache.recs; guarded by
	// Cache.mu and never read by readers.
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
	metaRef    = 1 << 26 // used since the policy last looked
	countOne   = 1 << 27 // one use in metaCount
	metaCount  = 7 << 27 // uses since the sketch last counted them
	metaUse    = metaRef | metaCount
	segShift   = 30
	metaSeg    = 3 << segShift // the policy's segment; set under Cache.mu

	// maxKey is the longest key the cache holds.
	maxKey = metaLen
)

// used returns meta m with a use recorded: metaRef set, and one more in
// metaCount unless it is full.
func used(m uint32) uint32 {
	if m&metaCount != metaCount {
		m += countOne
	}
	return m | metaRef
}

// seg returns the policy's segment of n.
func (n *node) seg() uint8 { return uint8(n.meta.Load() >> segShift) }

// setSegLocked sets the policy's segment of n, keeping the uses readers
// record meanwhile; guarded by Cache.mu.
func (n *node) setSegLocked(seg uint8) {
	for {
		m := n.meta.Load()
		if n.meta.CompareAndSwap(m, m&^metaSeg|uint32(seg)<<segShift) {
			return
		}
	}
}

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

// clone copies s so that the cache never pins a larger buffer the caller
// sliced it from.
func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
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
