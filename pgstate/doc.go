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
// index, operational_state_schema (the schema version) and a trigger that
// notifies every change of a row, psql's included. Migration runs in one
// transaction under an advisory lock, so that agents starting together
// migrate once; a schema newer than this package knows is refused with
// [opstate.ErrSchemaVersion] before anything is written.
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
//     sets (set_config), and cost nothing.
//   - The listener is lossy by nature, so the Store never trusts a cache
//     that may have missed a change: when the listener's connection fails,
//     reads bypass the cache and read the server (by default: see
//     opstate.Options.ServeStaleOnOutage) until a new listener listens;
//     then the cache is emptied and every watcher sent an OpReset. A
//     listener that hears nothing for SyncInterval pings its connection,
//     and one that gets no answer within another interval counts as
//     failed: a silently dead connection (a partition) is noticed within
//     twice SyncInterval, one closed by the server at once.
//   - The Store recovers from a restarted or unreachable server by itself:
//     writes fail while the server is gone, and succeed again once it is
//     back, with no reopening. A call that the server does not answer at
//     all (a partition) fails after BusyTimeout plus 10 seconds, rather
//     than when the kernel gives up on the connection.
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
//     A listener that cannot keep up lets the server's notification queue
//     grow (it is bounded; when full, writers fail).
//   - After every reconnection of its listener, a Store's cache starts
//     empty: a fleet that loses its database for a moment reads it once
//     per key afterwards.
package pgstate
