// Package pgdb is opstate's storage layer on PostgreSQL: a
// storage.Backend (Get, List, Namespaces, Apply, DeleteExpired) and a
// storage.Notifier, whose listener reports the changes of others that keep
// many Stores coherent.
//
// # Schema
//
// The table operational_state has persist's columns (namespace, key,
// value, updated_at, expires_at), the times as timestamptz, so that
// operators inspect and edit state with psql. The schema version is the
// one row of operational_state_schema. [Open] migrates inside one
// transaction under pg_advisory_xact_lock, keyed by the schema it runs
// in, so that many agents starting at once migrate once; a newer schema is
// refused with [storage.ErrSchemaVersion] before anything is written.
// Every name is unqualified: the connection's search_path picks the
// schema.
//
// # History
//
// Schema version 3 records every change of a namespace listed in
// operational_state_history_keep in operational_state_history, by
// triggers, in the transaction of the change (history_schema.go);
// version 4 gives that table one index, its primary key (namespace, seq),
// which every query of it uses. The DB is a storage.Historian over those
// tables (history.go). Apply sets the actor of its writes in the batch's
// first statement (originSQL), and again before a write of another
// actor, with set_config(..., true), which ends with the transaction:
// nothing carries over to the next batch on the same connection. The
// same first statement turns the record trigger off for a batch none of
// whose namespaces keeps history, and spares the record function its
// probe of the keep table for a batch of one namespace that keeps it
// (applyOriginSQL).
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
// when it starts or ends. The ExpiresAt that [DB.Get] and a conditional
// write's Held return are turned back into instants of the DB's clock
// (Options.Clock): as far from its now as the row's expiry is from the
// server's now() when it was read. A caller that compares them with its
// own clock (the Store does, for cached entries) thus sees a cached key
// die when the server's clock says, whatever the skew, give or take the
// read's latency and the drift of the two clocks over the TTL. Get returns
// a row expired or not, as persist does; it is List, Namespaces,
// conditional writes and sweeps that judge.
//
// # Notifications
//
// Every transaction of a DB that writes begins by naming itself
// (originSQL), and the trigger puts the name into each notification, so
// that a DB's listeners skip its own changes, which its Store already
// knows; a change from psql has no name and always counts. A TRUNCATE,
// which fires no row trigger, fires a statement trigger that notifies
// resetPayload, a change of anything, as does operational_state_reset()
// (triggers.go).
//
// The triggers may be missing, disabled, or fire for only some sessions
// (session_replication_role), and changes then notify nobody. So a
// listener checks, every Options.PingInterval (or half the server's
// idle_session_timeout, if shorter: see idle.go), with one query on its
// connection, that both triggers exist and fire always: the query shows
// the connection alive (no answer within another interval fails the
// listener: a connection that died silently is noticed within twice the
// interval), a trigger that does not fire fails it with
// [ErrTriggerDisabled], and triggers that changed since the last check
// (pg_trigger's oid and xmin: re-created, or altered and altered back)
// make it report a Reset. Listen checks too, so that Open refuses a
// disabled trigger; Open re-creates a missing one in its migration's
// transaction.
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
// (lock_timeout) fails with [storage.ErrBusy], and so does a batch that
// PostgreSQL aborts to break a deadlock (two batches that lock the same
// keys in opposite orders), and a statement the server cancels
// (statement_timeout, pg_cancel_backend): nothing of it was applied, and
// it may be retried. A commit that cannot queue its notifications fails
// with [ErrNotifyQueueFull]: the server reports it with SQLSTATE 54000,
// which it uses for many limits (an index row too big among them), so
// classify matches it by the source file, async.c, too.
package pgdb
