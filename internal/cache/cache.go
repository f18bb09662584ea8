package cache

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Entry is what the cache holds for one key.
type Entry struct {
	// Value is the stored value; empty for a negative entry.
	Value string
	// ExpiresAt is the absolute expiry in Unix milliseconds; 0 means never.
	ExpiresAt int64
	// Absent reports a negative entry: the key is known not to exist.
	Absent bool
}

// Cache is a namespaced, memory-bounded cache. The zero value is not usable;
// create one with [New].
type Cache struct {
	seed   maphash.Seed
	budget int64

	// tab is the current table. Readers load it once per lookup; it is
	// replaced under mu.
	tab atomic.Pointer[table]

	// seqs count the writes of each stripe of keys, and epoch the writes
	// that touch many keys at once (namespace writes, Clear); both are
	// incremented under mu and read without it by Token.
	seqs  [numStripes]stripe
	epoch atomic.Uint64

	// memo holds the hashes of recently created namespaces, so that a
	// lookup hashes only its key. A namespace's hash never changes, so a
	// memo is never stale; it is replaced under mu and read without it.
	memo [numMemos]atomic.Pointer[nsHash]

	evictions atomic.Uint64

	// mu serializes every change. It guards the fields below, the tables'
	// counts and slot stores, the stripes' pending counts, and every
	// namespace's list.
	mu            sync.Mutex
	size          int64                          // bytes accounted against budget
	spaces        *simplelru.LRU[string, *space] // least recently used first
	pendingSpaces int                            // namespace writes begun and not yet ended
	clears        uint64                         // Clear and RemoveNamespace calls

	// The eviction policy (evict.go, policy.go): every entry's record, the
	// free records, the segments, and how often keys were used.
	recs                    []rec
	free                    int32
	segs                    [numSegs]list
	sketch                  sketch
	windowMax, protectedMax int64   // the window's and protected's bytes at most
	cands                   []int32 // evictLocked's, kept for the next
	hand                    int32   // countUsesLocked's next record
	age                     ager    // the sketch's aging by lookups (age.go)
	grow                    grower  // the sketch's growth (grow.go)
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
	c.windowMax = int64(float64(c.budget) * windowShare)
	c.protectedMax = int64(float64(c.budget-c.windowMax) * protectedShare)
	c.resetListsLocked()
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
			// Record the use (a use another Get recorded meanwhile makes
			// this one lost: the count is an estimate). A hot entry's
			// flag is set and its count full, and a plain load keeps its
			// cache line shared between cores.
			if meta&metaUse != metaUse {
				n.meta.CompareAndSwap(meta, used(meta))
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

// Remove forgets ns and key, so that the next Get misses, and makes every
// Fill of it in progress fail. It reports whether an entry was cached.
func (c *Cache) Remove(ns, key string) bool {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stripe(h)
	st.seq.Add(1)
	st.removed++
	if i, n := c.findLocked(h, ns, key); n != nil {
		c.dropLocked(i, n)
		return true
	}
	return false
}

// RemoveNamespace forgets every key of ns and makes every Fill in progress
// fail. It returns how many entries it dropped.
func (c *Cache) RemoveNamespace(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.clears++ // no write pending now is cached at its end
	before := c.tab.Load().live
	c.dropSpaceLocked(ns)
	return before - c.tab.Load().live
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
