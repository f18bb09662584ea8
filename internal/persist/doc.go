// Package persist is the durable layer of opstate: one SQLite table,
// operational_state, reached through modernc.org/sqlite (pure Go, no cgo)
// on a file [Open] opens, or through an application's own database/sql
// pool of any SQLite driver ([OpenDB], shared.go), with the same schema,
// change log and migrations. What needs modernc.org/sqlite itself (frame
// counts for the checkpointer, OFD locks, the watch for another SQLite
// library) is left out over another driver; SQLite's result codes are
// read from any driver's errors (errcode.go).
//
// # Schema
//
//	CREATE TABLE operational_state (
//	    namespace  TEXT NOT NULL,
//	    key        TEXT NOT NULL,
//	    value      TEXT NOT NULL,
//	    updated_at TEXT NOT NULL,
//	    expires_at TEXT,            -- NULL: never expires
//	    PRIMARY KEY (namespace, key)
//	) WITHOUT ROWID;
//	CREATE INDEX operational_state_expiry
//	    ON operational_state (julianday(expires_at))
//	    WHERE expires_at IS NOT NULL;
//
// opstate writes timestamps as UTC text in the form
// 2006-01-02T15:04:05.000Z, which is what SQLite's
// strftime('%Y-%m-%dT%H:%M:%fZ') writes. What an expires_at means is decided
// by SQLite's julianday() in every query — reads, listing and the sweep —
// so any form SQLite reads works the same everywhere (the second-precision
// RFC 3339 of earlier versions, "2006-01-02 15:04:05", offsets such as
// +02:00), with millisecond precision; text that is no time at all never
// expires.
//
// The change log (schema version 2, changes.go) records the key of every
// row of operational_state inserted, updated or deleted, by any
// connection, from triggers in the writing transaction:
//
//	CREATE TABLE operational_state_changes (
//	    seq       INTEGER PRIMARY KEY,
//	    namespace TEXT NOT NULL,
//	    key       TEXT NOT NULL,
//	    expired   INTEGER  -- a delete of an expired row: 1
//	);
//	-- AFTER INSERT, UPDATE, UPDATE OF namespace, key (the old name) and
//	-- DELETE ON operational_state, one row each.
//
// A namespace and a key are TEXT. A row whose namespace or key is stored
// as another type (a BLOB written by hand; the columns' TEXT affinity
// turns numbers into text, and NOT NULL refuses NULL) names no key: [DB.Get]
// with text arguments never finds it, [DB.List] and [DB.Namespaces] leave
// it out, [DB.Changes] does not report its rows of the log, and
// [DB.DeleteExpired] and a DeleteNamespace [Write] delete it without
// returning or recording it.
//
// A position in the log means something only in the log it was read
// from: a backup restored into the file (SQLite's backup API, the sqlite3
// shell's .restore) brings back an older log, whose positions the next
// commits reuse. Every such rewind changes the file's schema cookie
// (PRAGMA schema_version), as VACUUM and every CREATE, DROP or ALTER do;
// [DB.Changes] reads it whenever another connection has committed, and
// reports a Reset when it changed. Writes that bypass the triggers — a
// connection with triggers turned off (SQLITE_DBCONFIG_ENABLE_TRIGGER,
// the shell's .dbconfig enable_trigger off), pages written through
// sqlite_dbpage — change nothing a DB can see, and are not reported.
//
// # Files
//
// [Open] checks what is at the path before SQLite opens it, with stat and
// lstat, never opening the file or its -wal, -shm or -journal (closing a
// descriptor of one would drop the process's locks on it). SQLite names a
// database's -wal and -shm after the path it opens, once it has followed
// symbolic links to the file; every connection to the file must use the
// same ones. So Open refuses with [ErrNotDatabase] a file with several
// hard links, a file that is itself a mount point (on Linux, from
// /proc/self/mountinfo: a bind mount of one file, whose device number is
// that of its directory when both are on one file system), and a database
// whose -wal, -shm or -journal is a mount point, a symbolic link (which
// SQLite refuses only after it has begun, and without saying why) or no
// regular file; a path through a symbolic link, to the file or to a
// directory, or through a mounted directory, reaches the one -wal beside
// the file, and is opened. For a new file the checks run before it is
// created, so that a refusal leaves nothing behind.
//
// # Migrations
//
// PRAGMA user_version records the schema version. [Open] brings older files
// forward in one transaction per step: the table of a file of the first,
// SQLite-only opstate (version 0, with or without expires_at) is rebuilt
// WITHOUT ROWID with every row copied as it is (a missing expires_at
// becomes NULL), and the expiry index is added (version 1); the change
// log and its triggers are added (version 2); the history's tables and
// triggers are added (version 3, history_schema.go). Running a migration again
// changes nothing; a file from a newer version is refused with
// [ErrSchemaVersion]. A file that needs a migration is read whole first
// (quick_check) and migrated before it is switched to WAL, so that a
// damaged one is refused untouched.
//
// A file at the current version may have lost what its migrations made:
// Open then compares the change log, the history, their triggers and the
// expiry index with what the migrations create (schema.go), and puts back, in one
// transaction, what is missing or differs — dropped, or created again
// with another definition; a change log of other columns is rebuilt
// empty. operational_state, which holds the data, is created if it is
// missing and never rebuilt: one without opstate's columns as they were
// made, or with another column in its key or one that an insert must
// name, or an object of another kind under one of these names, is
// refused with [ErrSchema], untouched. Columns added to either table that
// may be NULL or have a default are left alone. The check reads sqlite_schema and takes no write lock on a
// sound file. [DB.Changes] runs the same check and repair when the schema
// changes under a running DB.
//
// # Writes
//
// All writes go through one connection, in batches given to [DB.Apply]
// (one transaction each, BEGIN IMMEDIATE; a batch of one write is a single
// autocommit statement) and in sweeps by [DB.DeleteExpired], and are
// durable once they return nil: the database runs in WAL mode, so a
// committed transaction survives the process being killed; with [SyncFull]
// it also survives power loss.
// Reads ([DB.Get], [DB.List], [DB.Namespaces]) use a separate pool of
// connections and never wait for a writer.
//
// A write waits up to [Options.BusyTimeout] for a lock another connection
// holds (another process's write, a checkpoint that truncates the log),
// then fails with [ErrBusy]. The write connection waits in Go rather than
// in SQLite's busy handler (its busy_timeout is 0 once Open is done;
// lockwait.go), on SQLite's own schedule of retries, so that the caller's
// context ends the wait at once: the write then fails with the context's
// error and nothing of it is applied. The context never interrupts a
// statement that runs, so an error never hides a commit.
//
// # Private databases
//
// [Open] of ":memory:" opens a private in-memory database (SQLite's memdb
// VFS, under a name of its own), which every connection of the DB shares
// and nothing else reaches ([DB.Private]). It has no write-ahead log: its
// rollback journal is in memory, its reads wait for writes and writes for
// reads, there is nothing to checkpoint, and nothing is durable. A path
// beginning with "file:", which SQLite would read as a URI, is refused
// with [ErrInvalidPath].
//
// # Locks and other SQLite libraries
//
// The first [Open] in a process switches modernc.org/sqlite to OFD locks
// for database files on Linux (sqlite.OFDLocking), unless the environment
// sets MODERNC_SQLITE_OFD_LOCK: a close of another descriptor of the file
// in the process then drops none of SQLite's locks (ofd.go). The -shm's
// locks stay POSIX locks.
//
// Another copy of SQLite in the process cannot share the file (see
// foreign.go). On Linux, Open refuses a file that one has open with
// [ErrForeignSQLite], and a DB watches for one from then on: after every
// commit (its lock on the -shm), and from a goroutine of its own, started
// by Open and stopped by [DB.Close], while it writes. Once it has found
// one, [DB.Apply], [DB.DeleteExpired] and [DB.Checkpoint] fail with
// ErrForeignSQLite; reads go on.
//
// # Checkpoints
//
// Commits append to the write-ahead log. Its owner keeps it short: when
// [DB.CheckpointDue] fires (the commits since the last checkpoint have
// appended 1024 frames, as SQLite counts them), it calls [DB.Checkpoint],
// which copies the log into the database file in passes that let writes
// run beside them and completes it with one short pass that holds Apply
// off, so that the next write starts the log over; SQLite's own
// checkpoint, which a commit runs when the log passes 4096 frames, then
// never comes. A write waits for that last pass (measured by
// BenchmarkSustainedWrites in the opstate package), and for a whole
// Checkpoint when the log reaches 3072 frames while it runs; so does a
// read that begins during that pass. The pass waits up to a millisecond
// for the reads in progress before and after it, which would keep the log
// from being copied or from starting over.
package persist
