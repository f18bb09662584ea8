// Package persist is the durable layer of opstate: one SQLite table,
// operational_state, reached through modernc.org/sqlite (pure Go, no cgo).
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
// # Migrations
//
// PRAGMA user_version records the schema version. [Open] brings older files
// forward in one transaction per step: the table of a file of the first,
// SQLite-only opstate (version 0, with or without expires_at) is rebuilt
// WITHOUT ROWID with every row copied as it is (a missing expires_at
// becomes NULL), and the expiry index is added. Running a migration again changes nothing; a file from a
// newer version is refused with [ErrSchemaVersion].
//
// # Writes
//
// All writes go through one connection, in batches given to [DB.Apply]
// (one transaction each, BEGIN IMMEDIATE; a batch of one write is a single
// autocommit statement), and are durable once Apply returns nil: the database runs in WAL mode, so a committed transaction survives
// the process being killed; with [SyncFull] it also survives power loss.
// Reads ([DB.Get], [DB.List], [DB.Namespaces]) use a separate pool of
// connections and never wait for a writer.
package persist
