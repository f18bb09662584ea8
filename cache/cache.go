package cache

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// EntryOverhead is the number of bytes charged against the budget for every
// entry on top of the length of its key and value. It approximates the heap
// an entry really costs: the entry itself and its slot in a shard map.
const EntryOverhead = 144

// namespaceOverhead is charged for every namespace that holds entries, on top
// of the length of its name: the namespace record and its place in the
// namespace LRU.
const namespaceOverhead = 192

const numShards = 64

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

type mapKey struct {
	ns, key string
}

// node is an entry in a shard map and in its namespace's recency list.
type node struct {
	key   string
	entry Entry // written under c.mu and the shard's write lock; read under either
	space *space

	// used is set by readers without any lock and cleared by eviction
	// under c.mu.
	used atomic.Bool

	// prev and next link the namespace's recency list, head first; guarded by
	// c.mu.
	prev, next *node
}

// space is one namespace: the recency list of its entries.
type space struct {
	name string
	used atomic.Bool // set by readers, cleared by eviction under c.mu

	// guarded by c.mu
	head, tail *node
	n          int
}

type shard struct {
	mu sync.RWMutex // guards m
	m  map[mapKey]*node

	// seq counts writes to keys of this shard. It is incremented under mu
	// held for writing and read without it by Token.
	seq atomic.Uint64

	_ [64]byte // keeps neighbouring shards' locks off one cache line
}

// Cache is a namespaced, memory-bounded cache. The zero value is not usable;
// create one with [New].
type Cache struct {
	seed   maphash.Seed
	budget int64
	shards [numShards]shard

	// epoch counts writes that touch many keys at once (RemoveNamespace,
	// Clear); incremented under mu, read without it by Token.
	epoch atomic.Uint64

	// mu serializes every change: it guards size, spaces, every space's
	// list and every node's prev and next. It is taken before a shard lock,
	// never after one.
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
	for i := range c.shards {
		c.shards[i].m = make(map[mapKey]*node)
	}
	return c
}

func (c *Cache) shard(ns, key string) *shard {
	h := maphash.String(c.seed, ns)*31 + maphash.String(c.seed, key)
	return &c.shards[h%numShards]
}

// Get returns the entry cached for ns and key, and whether there is one.
// It allocates nothing and takes only a shared lock.
func (c *Cache) Get(ns, key string) (Entry, bool) {
	s := c.shard(ns, key)
	s.mu.RLock()
	n := s.m[mapKey{ns, key}]
	var e Entry
	if n != nil {
		e = n.entry
	}
	s.mu.RUnlock()
	if n == nil {
		return Entry{}, false
	}
	// Load before store: a hot entry's flag is already set, and a plain load
	// keeps its cache line shared between cores.
	if !n.used.Load() {
		n.used.Store(true)
	}
	if sp := n.space; !sp.used.Load() {
		sp.used.Store(true)
	}
	return e, true
}

// Token returns the current write position for ns and key. Take it before
// reading the backing store and pass it to [Cache.Fill].
func (c *Cache) Token(ns, key string) Token {
	return Token{epoch: c.epoch.Load(), seq: c.shard(ns, key).seq.Load()}
}

// Fill caches e for ns and key if no write to the key (or a wholesale one)
// happened since t was taken. It reports whether e was cached.
func (c *Cache) Fill(ns, key string, e Entry, t Token) bool {
	s := c.shard(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != t.epoch || s.seq.Load() != t.seq {
		return false
	}
	return c.setLocked(s, ns, key, e, false)
}

// Put records a write of e for ns and key: it replaces whatever was cached.
// A Put of an entry too large to cache removes the key instead.
func (c *Cache) Put(ns, key string, e Entry) {
	s := c.shard(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(s, ns, key, e, true)
}

// Remove forgets ns and key, so that the next Get misses.
func (c *Cache) Remove(ns, key string) {
	s := c.shard(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	s.mu.Lock()
	n := s.m[mapKey{ns, key}]
	if n != nil {
		delete(s.m, mapKey{ns, key})
	}
	s.seq.Add(1)
	s.mu.Unlock()
	if n != nil {
		c.unlinkLocked(n)
	}
}

// RemoveNamespace forgets every key of ns and invalidates every Fill in
// progress.
func (c *Cache) RemoveNamespace(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	sp, ok := c.spaces.Peek(ns)
	if !ok {
		return
	}
	for sp.head != nil {
		n := sp.head
		s := c.shard(ns, n.key)
		s.mu.Lock()
		delete(s.m, mapKey{ns, n.key})
		s.mu.Unlock()
		c.unlinkLocked(n)
	}
}

// Clear forgets everything and invalidates every Fill in progress.
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
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
	st := Stats{Namespaces: c.spaces.Len(), Bytes: c.size, Budget: c.budget, Evictions: c.evictions.Load()}
	for _, sp := range c.spaces.Values() {
		st.Entries += sp.n
	}
	return st
}

func entryCost(key string, e Entry) int64 {
	return int64(len(key)+len(e.Value)) + EntryOverhead
}

func spaceCost(ns string) int64 {
	return int64(len(ns)) + namespaceOverhead
}

// setLocked stores e for ns and key and evicts down to the budget. write
// says whether this records a write (which bumps the shard's sequence). It
// reports whether e was stored.
func (c *Cache) setLocked(s *shard, ns, key string, e Entry, write bool) bool {
	cost := entryCost(key, e)
	fits := cost+spaceCost(ns) <= c.budget/2

	s.mu.Lock()
	n := s.m[mapKey{ns, key}]
	if write {
		s.seq.Add(1)
	}
	if !fits {
		if n != nil {
			delete(s.m, mapKey{ns, key})
		}
		s.mu.Unlock()
		if n != nil {
			c.unlinkLocked(n)
		}
		return false
	}
	if n != nil {
		old := entryCost(n.key, n.entry)
		e.Value = cloneIfNew(e.Value, n.entry.Value)
		n.entry = e
		s.mu.Unlock()
		c.size += cost - old
		c.touchLocked(n)
	} else {
		sp := c.spaceLocked(ns)
		n = &node{key: clone(key), space: sp}
		e.Value = clone(e.Value)
		n.entry = e
		s.m[mapKey{sp.name, n.key}] = n
		s.mu.Unlock()
		c.size += cost
		c.pushLocked(n)
	}
	c.evictLocked()
	return true
}

// clone copies s so that the cache never pins a larger buffer the caller
// sliced it from.
func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// cloneIfNew returns old when it holds the same bytes as s, avoiding a copy
// for a rewrite of an unchanged value.
func cloneIfNew(s, old string) string {
	if s == old {
		return old
	}
	return clone(s)
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

// touchLocked moves n to the front of its namespace and the namespace to the
// front of the namespace order.
func (c *Cache) touchLocked(n *node) {
	c.detachLocked(n)
	c.pushLocked(n)
	c.spaces.Get(n.space.name)
}

// unlinkLocked drops n, already deleted from its shard map, from its
// namespace, and the namespace when it becomes empty.
func (c *Cache) unlinkLocked(n *node) {
	c.detachLocked(n)
	c.size -= entryCost(n.key, n.entry)
	if sp := n.space; sp.n == 0 {
		c.spaces.Remove(sp.name)
		c.size -= spaceCost(sp.name)
	}
}

// evictLocked drops entries until the accounted size fits the budget: from
// the least recently used namespace, its least recently used entries, giving
// each namespace and entry used since it was last considered a second chance.
func (c *Cache) evictLocked() {
	for c.size > c.budget {
		_, sp, ok := c.spaces.GetOldest()
		if !ok {
			return
		}
		if sp.used.Load() {
			sp.used.Store(false)
			c.spaces.Get(sp.name)
			continue
		}
		for c.size > c.budget && sp.n > 0 {
			n := sp.tail
			if n.used.Load() {
				n.used.Store(false)
				c.detachLocked(n)
				c.pushLocked(n)
				continue
			}
			s := c.shard(sp.name, n.key)
			s.mu.Lock()
			delete(s.m, mapKey{sp.name, n.key})
			s.mu.Unlock()
			c.unlinkLocked(n)
			c.evictions.Add(1)
		}
	}
}
