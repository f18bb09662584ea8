// Package cache is the in-memory read layer of opstate: a namespaced map
// whose entries carry their absolute expiry, bounded by one memory budget in
// bytes across all namespaces.
//
// # Layout
//
// Lookups take no lock: entries live in an open-addressing hash table of
// atomic pointers to immutable 64-byte nodes, which hold keys of up to 20
// bytes themselves, so that a lookup reads one cache line of its node.
// Every change happens under one mutex and publishes a new entry (or a
// whole new table when it grows), so a concurrent [Cache.Get] sees either
// the old or the new state, never a torn one.
//
// # Eviction
//
// When the budget is exceeded, namespaces that nobody read since eviction
// last looked at them go first, least recently written first: agents
// that open one namespace per conversation lose the namespaces of
// finished conversations before anything hot. Namespaces are ordered by a
// github.com/hashicorp/golang-lru/v2 LRU, and a Get sets a "used" flag on
// its namespace.
//
// Among the namespaces in use, the policy is W-TinyLFU's (policy.go): new
// entries wait in a small window (1% of the budget); one leaving it
// displaces the main area's victim only if a frequency sketch (sketch.go,
// a count-min sketch of 4-bit counters, 16 per entry, raised
// conservatively, halved every 20 lookups per entry by the Store's count,
// age.go; its counts of the cached entries carried over when it grows,
// grow.go) says it was used more often lately, so
// that a scan of keys used once passes through
// and leaves the hot set alone, and a loop a little larger than the cache
// keeps most of the cache hitting; the main area is split into probation
// and protected, for entries used again. A Get records a use without any
// lock and without writing anything other Gets write, once the entry is
// hot: it sets a "used" flag and counts up to 7 uses in the entry's node,
// with a compare-and-swap that a hot entry, whose flag is set and count
// full, skips. The policy reads the flag when an entry comes up for
// eviction (a second chance, or a move to protected), and a hand going
// round the entries adds their counts to the sketch. Keys an adversary
// picks cannot be made to collide in the sketch without knowing the
// cache's random hash seed; even if every counter were full, one
// candidate in 128 that was used often is admitted at random.
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
// The code is in eight files: table.go (the lock-free slot table, its
// tags and probing), evict.go (namespaces, the entries' records and the
// budget), policy.go (which entry goes), sketch.go, age.go and grow.go
// (the frequency sketch, its aging and its growth), fence.go (tokens,
// pending writes, Clear) and cache.go (the Cache, Get, Stats).
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
