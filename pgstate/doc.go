// Package pgstate serves an [opstate.Store] over PostgreSQL, so that
// agents on many machines share one operational state: reads come from
// each agent's memory, writes commit to PostgreSQL before they return, and
// a write by any agent, or by hand with psql, reaches every other agent's
// cache within a few milliseconds through LISTEN/NOTIFY.
//
//	s, err := pgstate.Open(ctx, "postgres://agent@db.internal/ops", opstate.Options{})
//
// The Store is the same type, with every method and error of a Store on
// SQLite, Backup excepted ([opstate.ErrUnsupported]: use pg_dump). The
// same conformance suite (package storetest of the root module) runs over
// both.
//
// # Schema
//
// Open creates, in the schema its connection's search_path picks, the
// table operational_state (namespace, key, value text, updated_at and
// expires_at timestamptz: the columns of the SQLite file), its expiry
// index, operational_state_schema (the schema version) and two triggers
// that notify every change: operational_state_notify, a row trigger, for
// every row inserted, updated or deleted, psql's included, and
// operational_state_truncate for TRUNCATE, which fires no row trigger.
// Both are enabled ALWAYS, so that they fire in sessions whose
// session_replication_role is replica too (pg_restore
// --disable-triggers, logical replication's apply worker), and their
// functions name nothing outside pg_catalog, so that they run whatever
// the writing session's search_path. Migration runs in one transaction
// under an advisory lock, so that agents starting together migrate once;
// a schema of version 1 (opstate before TRUNCATE notified) is migrated
// in place, taking the table's lock for a moment to replace its trigger;
// a schema newer than this package knows is refused with
// [opstate.ErrSchemaVersion] before anything is written. (So once an
// agent of this version has opened a schema, agents of the earlier one
// go on running but refuse to open it again: upgrade them all.) Open also
// re-creates a trigger that is missing (dropped, or a restore not yet
// done), which takes a role that owns the table; it does not touch one
// that is disabled, and refuses to open ([ErrTriggerDisabled]): see
// "Operators" below.
//
// # History
//
// A namespace whose history is turned on (the table
// operational_state_history_keep; schema version 3) has every change of
// its keys recorded in operational_state_history by two triggers, in the
// transaction of the change: the Store's writes, another agent's, psql's
// (with no actor), a sweep's and a DELETE of an expired row (as expire),
// and a TRUNCATE (each row of such a namespace recorded as deleted before
// the table is emptied). The actor of a write rides on the statement that
// begins every batch (set_config('opstate.actor', ..., true)): recording
// costs no round trip. The same statement checks whether any namespace of
// the batch keeps history, and if none does turns the record trigger off
// for the batch's transaction (opstate.record), so that a write to a
// namespace without history costs one probe of the keep table a batch and
// no trigger call; a batch of one namespace that keeps history has each
// row recorded without probing the keep table again. The tables, the triggers, what
// Open repairs and what TRUNCATE and operational_state_reset() record are
// in docs/schema.md of the root module ("PostgreSQL").
//
// # Guarantees
//
//   - A write that returned nil is committed on the server (as durable as
//     its synchronous_commit and replication make it). One that returned
//     an error was not applied, except when the connection broke after the
//     server received the commit: then it may have been (as a failed fsync
//     on SQLite).
//   - Writes are grouped: every write waiting when a batch starts goes to
//     the server in one round trip, one transaction.
//   - Conditional writes are decided by one statement's affected rows on
//     the server: of racing SetIfAbsent or CompareAndSwap calls from any
//     number of agents, exactly one wins.
//   - Expiry is judged by the server's clock (now()) in writes, in reads
//     from the server (List, Namespaces, Get of an uncached key) and in
//     sweeps, so that agents with skewed clocks agree on when a key dies.
//     A cached entry is judged by the agent's Clock, but its expiry was
//     translated into that clock when it was read or written (as far from
//     the agent's now as from the server's), so skew does not matter
//     there either: only the latency of that read and the drift of the two
//     clocks over the TTL do.
//   - Sweeps of many agents at once skip each other's rows (FOR UPDATE
//     SKIP LOCKED): each expired row is deleted and counted by one.
//   - Every change to operational_state notifies: the Store's listener,
//     one dedicated connection, drops exactly the changed keys from its
//     cache (a namespace when the key is too long for a notification),
//     and sends them to watchers. The Store's own writes, which its cache
//     already holds, are told apart by a name each of its transactions
//     sets (set_config), and cost nothing. A TRUNCATE empties every
//     Store's cache and sends every watcher an OpReset. Changes made by
//     sessions in replica mode (session_replication_role = replica:
//     pg_restore --disable-triggers, a logical replication subscription
//     into the table) notify like any other.
//   - The listener is lossy by nature, so the Store never trusts a cache
//     that may have missed a change: when the listener's connection fails,
//     reads bypass the cache and read the server (by default: see
//     opstate.Options.ServeStaleOnOutage) until a new listener listens;
//     then the cache is emptied and every watcher sent an OpReset. Every
//     SyncInterval the listener checks its connection with one query
//     that also reads the triggers: one that gets no answer within
//     another interval counts as failed, so that a silently dead
//     connection (a partition) is noticed within twice SyncInterval, one
//     closed by the server at once.
//   - Changes made while the triggers did not fire are not missed: a
//     check that finds a trigger missing, disabled, or enabled for only
//     some sessions counts as a failure of the listener (reads bypass the
//     cache, watchers get OpStale, Stale reports true, and the error,
//     logged, names the SQL that repairs it) until a check finds both
//     firing again; one that finds the triggers changed since the last
//     check (re-created by a restore, or turned off and on again, even in
//     one transaction) empties the cache and sends every watcher an
//     OpReset. Either way a change made while they were off is served at
//     the latest one SyncInterval, and a check's round trip, after it
//     committed or after they were back, whichever is later.
//   - The Store recovers from a restarted or unreachable server by itself:
//     writes fail while the server is gone, and succeed again once it is
//     back, with no reopening. A call that the server does not answer at
//     all (a partition) fails after BusyTimeout plus 10 seconds, rather
//     than when the kernel gives up on the connection.
//   - A call the server cancels fails with [opstate.ErrBusy] and applied
//     nothing: a write that waited longer than BusyTimeout for a row lock
//     (lock_timeout), the victim of a deadlock, and any statement, read
//     or write, that ran past a statement_timeout the role, the database
//     or the connection string sets (or that an operator canceled with
//     pg_cancel_backend). A write that the server's full notification
//     queue refused fails with [ErrNotifyQueueFull] and applied nothing.
//     All may be retried.
//   - Close does not wait out a lock_timeout: a write waiting for a row
//     or table lock (or queued behind one) when Close is called is
//     canceled on the server (a cancel request, one round trip on a
//     connection of its own), and Close waits for the server's answer,
//     bounded by BusyTimeout plus 10 seconds. The write then fails with
//     [opstate.ErrClosed] when the server rolled it back, and returns nil
//     when it had committed first: ErrClosed means it was not applied,
//     and will not be (TestCloseDuringRowLock). A read waiting for a table
//     lock (LOCK TABLE, TRUNCATE or ALTER TABLE in another session's open
//     transaction) fails with ErrClosed at once (TestCloseDuringTableLock).
//   - A server idle_session_timeout, however short, costs no outage: the
//     listener checks within half of it, and the pool pings a connection
//     idle for half of it before handing it out, replacing one the server
//     has ended, so that no call fails for it.
//
// # Operators
//
// Two statements turn both triggers back on, for every session (the SQL
// names the table as the search_path finds it: qualify it with its
// schema otherwise):
//
//	ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_notify;
//	ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_truncate;
//
// and two more the triggers that record history (which the Stores do not
// check: one disabled records nothing, and stops no Store):
//
//	ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_record;
//	ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_record_truncate;
//
// and one makes every Store of a schema empty its cache and send its
// watchers OpReset, whenever an operator wants them to:
//
//	SELECT operational_state_reset();            -- the search_path's schema
//	SELECT operational_state_reset('myschema');
//
// What each way of changing the table behind the Stores' backs asks of an
// operator:
//   - INSERT, UPDATE, DELETE, COPY, TRUNCATE, from psql or any client, in
//     any session_replication_role: nothing.
//   - ALTER TABLE operational_state DISABLE TRIGGER (ALL, USER or a
//     name): running Stores read the server instead of their caches from
//     their next check on, and Open fails with [ErrTriggerDisabled].
//     Afterwards, run the two ALTER TABLE statements above. ENABLE
//     TRIGGER ALL is not enough: it enables the triggers for sessions
//     whose session_replication_role is origin only, which the Stores
//     refuse as they refuse a disabled trigger. At their next check the
//     Stores listen again, empty their caches and send OpReset.
//   - pg_restore --disable-triggers, or a script of pg_dump
//     --disable-triggers: the restore ends with ENABLE TRIGGER ALL, so
//     run the two ALTER TABLE statements after it. A data-only restore
//     without --disable-triggers needs nothing: its rows notify.
//   - A restore of pg_dump --clean (psql, or pg_restore --clean; in one
//     transaction or not): nothing. The restore drops the table and
//     creates the triggers after the data, but each Store's next check
//     finds new triggers (or none, until the restore is done) and empties
//     its cache. The dump keeps the triggers enabled ALWAYS. If a restore
//     stops before it creates them, opening a Store (as the table's
//     owner) re-creates them, and the running Stores recover.
//   - A logical replication subscription into the table fires the
//     record triggers on the subscriber too, which records the changes it
//     applies (with no actor): publish operational_state alone, not the
//     history's tables, or the subscriber's own records and the
//     publisher's collide on seq.
//   - DROP TABLE operational_state_history (or its keep table) makes every
//     write to operational_state fail until a Store opens the schema and
//     re-creates it, empty; to stop recording, turn history off instead
//     (SetHistory with keep 0, or DELETE FROM operational_state_history_keep).
//   - A logical replication subscription into the table, or an upgrade,
//     failover or point-in-time recovery of the server: nothing (the
//     subscription's apply worker fires the triggers; the others end every
//     connection, and each Store empties its cache when it listens again).
//
// A check reads the triggers, not what their functions do: a trigger
// function replaced by hand (CREATE OR REPLACE FUNCTION) is not noticed.
// Running Stores log a trigger found off once, as the cause of the
// change-stream outage; if their listener was already down for another
// reason (a server restart), that reason is what they log, and
// [opstate.Store.Stale] stays true until the triggers are repaired.
//
// # Caveats
//
//   - Others' writes are seen after their notification arrives, a
//     millisecond or so on a LAN, not at once: a read on one agent right
//     after another agent's write returned may return the older value.
//     Writes through one Store are linearizable per key, as on SQLite.
//   - PostgreSQL's text holds neither NUL bytes nor invalid UTF-8: a write
//     of such a namespace, key or value fails with [opstate.ErrInvalidText]
//     and stores nothing, and reads of such names find nothing.
//   - The listener needs a session of its own: through a pooler in
//     transaction mode (PgBouncer's default), LISTEN does not work.
//     Connect to the server or to a session-mode pool.
//   - Each Store holds its pool (up to pgxpool's default of four
//     connections or one per CPU; pool_max_conns in the connection string
//     sets it) and one listener connection.
//   - Every changed row costs the writing transaction one pg_notify.
//     A listening session that does not read (the listener of an agent
//     whose process is stopped, or any session left in a transaction
//     after a LISTEN) keeps the server's notification queue from being
//     trimmed; once it is full (8 GB by default), every write to the
//     table fails, the Stores' with [ErrNotifyQueueFull], until that
//     session ends (pg_notification_queue_usage() shows the queue's use,
//     pg_terminate_backend ends a session).
//   - Each listener runs one small catalog query every SyncInterval (or
//     half the server's idle_session_timeout, if shorter), with or without
//     traffic: a fraction of a millisecond, two to three times an empty
//     ping (BenchmarkTriggerCheck in internal/pgdb). The idle_session_timeout is read when the listener
//     connects: one lowered by ALTER ROLE later holds from the next
//     reconnection.
//   - The Store's lock_timeout is BusyTimeout, whatever the role or the
//     connection string sets; a shorter statement_timeout ends a write's
//     wait for a lock sooner, with the same ErrBusy. Open's migration
//     runs without a statement_timeout (its context bounds it), so that
//     DDL slowed by a loaded server does not fail every Open.
//   - After every reconnection of its listener, a Store's cache starts
//     empty: a fleet that loses its database for a moment reads it once
//     per key afterwards.
package pgstate
