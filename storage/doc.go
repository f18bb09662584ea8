// Package storage is the contract between an [github.com/d8da9184/opstate.Store]
// and the database it keeps its rows in: the [Backend] interface, the
// types that cross it, and the errors a backend wraps so that the Store's
// callers can match them.
//
// Two backends implement it: package internal/persist (SQLite: a file
// opstate opens, or an application's own *sql.DB) and module
// github.com/d8da9184/opstate/pgstate (PostgreSQL). A Store over
// another backend is made with [github.com/d8da9184/opstate.OpenBackend].
//
// # The protocol
//
// A Store reads every key it does not cache with [Backend.Get], and sends
// every write through [Backend.Apply] in batches (group commit), one call
// at a time: Apply is never called concurrently with itself by one Store,
// while Get, List, Namespaces and DeleteExpired may be called from any
// goroutine at any time, Apply running or not. Close is called once, after
// every other call has returned.
//
// Times are Unix milliseconds of the Store's clock (its Options.Clock),
// passed to the calls that judge expiry as now. A backend that judges
// expiry by a clock of its own (PostgreSQL's now(), so that agents with
// skewed clocks agree) may ignore now, but must then report every expiry
// it returns, in [Row.ExpiresAt] and [Result.Held], as an instant of the
// Store's clock: the Store caches what it returns and compares it with its
// own clock.
//
// A backend that others write without the Store's knowledge tells it what
// they changed, so that the Store drops just those keys from its cache:
// by implementing [Notifier], whose listener either reports every change
// as it commits (PostgreSQL's LISTEN) or polls for them (SQLite's change
// log, a listener that is also a [Poller]). A backend that does neither is
// served as if the Store were its only writer.
//
// The protocol is tested in this module's storetest package, which runs
// the Store's semantic tests over any backend.
package storage
