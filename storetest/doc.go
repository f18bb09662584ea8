// Package storetest is the conformance suite of
// [github.com/d8da9184/opstate.Store]: the semantic tests that every
// storage a Store runs on must pass, written once, so that the backends
// (one SQLite file, and PostgreSQL through module
// github.com/d8da9184/opstate/pgstate) cannot drift apart.
//
// Like testing/fstest, it is an ordinary package that imports testing. A
// backend's tests call [Run] from a Test function, with a [Config] that
// says how to open a Store on a new, empty database and how the backend
// differs where the Store's promises allow it to:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			New: func(t *testing.T) storetest.Opener {
//				path := filepath.Join(t.TempDir(), "state.db")
//				return func(opts opstate.Options) (*opstate.Store, error) {
//					return opstate.Open(path, opts)
//				}
//			},
//			Lag: 250 * time.Millisecond,
//		})
//	}
//
// # What it covers
//
// Each part is a subtest of the t given to Run, with subtests of its own:
//
//   - Seed: Get and Lookup of missing keys and of empty values, Set,
//     Delete, DeleteNamespace, List and Namespaces (sorted by name as
//     bytes, counting live keys), [opstate.ErrEmptyName] from every method
//     given an empty name, [opstate.ErrInvalidTTL] for ttl <= 0 and a
//     nanosecond's TTL rounded up to a millisecond, [opstate.ErrClosed]
//     from every method after Close, and a second Close.
//   - TTL: an expiry hides a key once the Store's clock passes it, Set
//     clears one, DeleteExpired deletes just the expired rows and counts
//     them, List and Namespaces omit expired keys.
//   - Conditional: SetIfAbsent, CompareAndSwap, CompareAndDelete and their
//     WithTTL variants over every state of a key (absent, deleted, live
//     with the compared value or another, the empty value, expired), and
//     racing SetIfAbsents from two Stores on one database: one winner.
//   - Watch: events for a Store's own writes and another Store's, and a
//     state rebuilt from events that converges to List.
//   - Coherence: a write by one Store served by another that had cached
//     the key, within Config.Lag.
//   - HostileText: namespaces, keys and values full of quotes,
//     backslashes, LIKE wildcards, control bytes, emoji, large values, and
//     strings with NUL bytes or invalid UTF-8 (refused or round-tripped,
//     as Config.RefusesText says), alone and among concurrent writes.
//   - Model: concurrent random writes checked against a reference model.
//
// # How it runs
//
// Every Store the suite opens it closes at the end of its subtest, and
// each subtest opens the database it needs with Config.New. Tests of
// expiry move a fake [opstate.Options.Clock] and assert only what holds
// whether the Store's clock or the database's judges expiry (PostgreSQL
// judges writes, List, Namespaces and sweeps by the server's clock): what
// the Store decides itself (a cached entry read after its expiry) with the
// fake clock, the rest with real TTLs of a few hundred milliseconds and
// polling. Waits poll and end as soon as what they wait for holds. The
// whole suite takes a few seconds.
package storetest
