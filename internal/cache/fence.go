package cache

import "sync/atomic"

// numStripes is the number of write sequences that fill tokens check.
const numStripes = 256

// Token is taken before a read from the backing store and handed to
// [Cache.Fill], which applies only if the token is still current.
type Token struct {
	epoch uint64
	seq   uint64
}

// stripe tracks the writes to one 1/numStripes share of all keys.
type stripe struct {
	// seq counts writes; incremented under Cache.mu, read without it by
	// Token.
	seq atomic.Uint64
	// pending counts writes begun and not yet ended; guarded by Cache.mu.
	pending int32
	// removed counts Remove calls; guarded by Cache.mu. A write pending
	// across one is not cached at its end: the key was changed by someone
	// else, maybe after the write committed.
	removed uint64
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
	c.ageLocked()
	if c.epoch.Load() != t.epoch || st.seq.Load() != t.seq || st.pending > 0 || c.pendingSpaces > 0 {
		return false
	}
	return c.setLocked(h, ns, key, e)
}

// Pending is a write that the backing store has not committed yet, of one
// key or of every key of a namespace. [Cache.Begin] or
// [Cache.BeginNamespace] returns it before the commit, and [Cache.End],
// called exactly once with it, ends it after the commit succeeded or
// failed. In between, what it writes is not cached and no [Cache.Fill] of
// it succeeds, so that every read goes to the backing store, which alone
// knows the moment the write takes effect.
type Pending struct {
	ns, key string
	h       uint64 // the key's hash; unused for a namespace
	// clears and removed are Cache.clears and the stripe's removed when the
	// write began: a Clear, RemoveNamespace or Remove since then means
	// someone else may have written the key after this write committed.
	clears    uint64
	removed   uint64
	namespace bool
}

// Begin records that a write of ns and key is about to be committed to the
// backing store, drops the key, and returns the Pending write that
// [Cache.End] takes.
func (c *Cache) Begin(ns, key string) Pending {
	h := c.hash(ns, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stripe(h)
	st.pending++
	st.seq.Add(1)
	if i, n := c.findLocked(h, ns, key); n != nil {
		c.dropLocked(i, n)
	}
	return Pending{ns: ns, key: key, h: h, clears: c.clears, removed: st.removed}
}

// BeginNamespace is [Cache.Begin] for a write of every key of ns: the
// namespace is dropped, and no Fill of any key succeeds until End.
func (c *Cache) BeginNamespace(ns string) Pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pendingSpaces++
	c.epoch.Add(1)
	c.dropSpaceLocked(ns)
	return Pending{ns: ns, clears: c.clears, namespace: true}
}

// End ends the pending write p. For a write of one key, e is what the key
// holds now that the write committed, and is cached; it is nil when the
// write failed, or when a later write of the same key decides what the key
// holds: the key is then left uncached, whatever another write of it cached
// meanwhile. If the cache was cleared since p began, or the key (or its
// namespace, or another key of its stripe) removed, e is not cached
// either: someone else may have written the key after this write
// committed. The writes of one key must end in the order they committed.
// For a namespace write, e is ignored, and the namespace is dropped again.
func (c *Cache) End(p Pending, e *Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.namespace {
		c.pendingSpaces--
		c.epoch.Add(1)
		c.dropSpaceLocked(p.ns)
		return
	}
	st := c.stripe(p.h)
	st.pending--
	st.seq.Add(1)
	if e != nil && c.clears == p.clears && st.removed == p.removed {
		c.setLocked(p.h, p.ns, p.key, *e)
		return
	}
	// Another write of the key, begun before this one ended, may have
	// cached its entry since this one began.
	if i, n := c.findLocked(p.h, p.ns, p.key); n != nil {
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
	c.resetListsLocked()
	c.size = 0
}
