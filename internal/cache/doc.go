// Package cache is the in-memory read layer of opstate: a namespaced map
// whose entries carry their absolute expiry, bounded by one memory budget in
// bytes across all namespaces.
//
// # Layout
//
// Lookups take no lock: entries live in an open-addressing hash table of
// atomic pointers to immutable 64-byte nodes, which hold keys of up to 20
// bytes themselves, so that a lookup reads one cache line of its node. Every change happens under one
// mutex and publishes a new entry (or a whole new table when it grows), so
// a concurrent [Cache.Get] sees either the old or the new state, never a
// torn one. Recency is kept without an exclusive lock per read: a Get sets
// a "used" bit on the entry and on its namespace, and eviction gives every
// used entry a second chance (the CLOCK approximation of LRU). Namespaces
// are ordered by a github.com/hashicorp/golang-lru/v2 LRU; when the budget
// is exceeded, the least recently used namespace gives up its least
// recently used entries first. Agents that open one namespace per
// conversation thus lose the namespaces of finished conversations before
// anything hot.
//
// An entry is either a value with an optional expiry or a negative entry,
// which records that the key is known to be absent. Both count against the
// budget, together with a fixed per-entry overhead ([EntryOverhead]).
//
// # Fills and writes
//
// The cache does not know where values come from. Its owner tells it about
// two kinds of event, and the cache fences them against each other so that
// it never serves a value older than the backing store's:
//   - A write, in two steps around the backing store's commit:
//     [Cache.Begin] (or [Cache.BeginNamespace] for a write of every key of
//     a namespace) before it, which drops the key and returns a [Pending];
//     [Cache.End] after it, with the entry the key now holds, or nil if the
//     commit failed. While a write is pending its key is neither served nor
//     filled, so every read goes to the backing store, which alone knows the
//     moment the commit takes effect. The writes of one key must end in the
//     order they committed.
//   - A fill, the result of a read from the backing store after a miss:
//     take a [Token] before the read, and [Cache.Fill] caches the result
//     only if no write of the key began or ended since and none is
//     pending, so a slow read never puts an older value back over a newer
//     write.
//
// [Cache.Clear] forgets everything, for when someone else may have written
// the backing store: fills in progress and writes pending at the time
// cache nothing. [Cache.Remove] forgets one key whose row is known to be
// gone or invisible (an expired row deleted by a sweep).
//
// The code is in four files: table.go (the lock-free slot table, its tags
// and probing), evict.go (namespaces, recency and the budget), fence.go
// (tokens, pending writes, Clear) and cache.go (the Cache, Get, Stats).
//
// # Guarantees
//
// Every method is safe for concurrent use. Get allocates nothing and takes
// no lock. An entry stored by End or Fill is never evicted by that same
// call. The cache holds its own copies of keys and values, never a caller's
// buffer. The bytes accounted (keys, values, overhead) never exceed the
// budget after a method returns, except transiently during it.
// Entries too large to share the budget sensibly (more than half of it) are
// not cached at all, nor are keys longer than 1<<24 - 1 bytes.
//
// # Caveats
//
// The cache never reads a clock: an entry's expiry is returned to the
// caller, who decides whether it has passed. Expired entries therefore stay
// until they are evicted, removed or overwritten.
package cache
