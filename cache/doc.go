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
// The cache does not know where values come from. Its owner distinguishes
// two kinds of insertion:
//   - [Cache.Put], [Cache.Remove], [Cache.RemoveNamespace] and [Cache.Clear]
//     record writes that are already durable; they always apply.
//   - [Cache.Fill] records the result of a read from the backing store. It
//     applies only if no write touched the key since the caller took its
//     [Token], so a slow read can never put an older value back over a
//     newer write.
//
// # Guarantees
//
// Every method is safe for concurrent use. Get allocates nothing and takes
// no lock. An entry stored by Put or Fill is never evicted by that same
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
