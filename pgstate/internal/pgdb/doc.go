// Package pgdb is opstate's storage layer on PostgreSQL: the operations
// that persist.DB offers the Store on SQLite (Get, List, Namespaces,
// Apply, DeleteExpired), taking and returning persist's types, plus a
// listener for the change notifications that keep many Stores coherent.
//
// # Schema
//
// The table operational_state has persist's columns (namespace, key,
// value, updated_at, expires_at), the times as timestamptz, so that
// operators inspect and edit state with psql. The schema version is the
// one row of operational_state_schema. [Open] migrates inside one
// transaction under pg_advisory_xact_lock, keyed by the schema it runs
// in, so that many agents starting at once migrate once; a newer schema is
// refused with [persist.ErrSchemaVersion] before anything is written.
// Every name is unqualified: the connection's search_path picks the
// schema.
//
// # Clock
//
// The server's clock judges expiry: now(), the start of the transaction,
// in conditional writes, in List's and Namespaces' liveness and in sweeps.
// now() rather than clock_timestamp() because it is one instant for a
// whole batch, as the batch time of persist is: every conditional write of
// a batch sees the same keys alive, whatever the statements cost. A
// write's ExpiresAt is read relative to the now argument of Apply: the row
// expires at the server's now() plus ExpiresAt-now, so a TTL is measured
// on the server's clock from the commit, and an agent whose clock is off
// by an hour still sets a key that lives for its TTL. What the local clock
// still decides here is only that difference: how long a TTL is, never
// when it starts or ends. But the ExpiresAt that
// [DB.Get] and a conditional write's Held return are instants of the
// server's clock, and a caller that compares them with its own clock (the
// Store does, for cached entries) sees a cached key die early or late by
// exactly the skew. Get returns a row expired or not, as persist does; it
// is List, Namespaces, conditional writes and sweeps that judge.
//
// # Values
//
// A text column cannot hold a NUL byte, nor, in a UTF8 database, invalid
// UTF-8. Writes that would store such a namespace, key or value fail with
// [ErrInvalidText] before anything is sent, so nothing is corrupted and
// every stored value reads back byte for byte. Reads, deletes and the Old
// of a conditional write treat such a string as one that nothing holds:
// Get finds nothing, Delete changes nothing, Swap's condition fails.
//
// # Errors
//
// A statement that waits for a row lock longer than [Options.BusyTimeout]
// (lock_timeout) fails with [persist.ErrBusy], and so does a batch that
// PostgreSQL aborts to break a deadlock (two batches that lock the same
// keys in opposite orders): nothing of it was applied, and it may be
// retried.
package pgdb
