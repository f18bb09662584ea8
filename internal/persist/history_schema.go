package persist

import (
	"context"
	"database/sql"
)

// The history (schema version 3) records, for the namespaces listed in
// operational_state_history_keep, every change to one of their rows, by
// any connection, from triggers in the writing transaction: what the row
// was before and after, when (SQLite's clock) and, for a DB's own writes,
// who (the Write's Actor). Which namespaces keep history is stored in the
// file, so that every writer honours it, the sqlite3 shell included; a
// namespace not listed costs each write the triggers' lookup of the keep
// table, and records nothing.
//
// The main-schema triggers write actor NULL: they cannot read anything
// but the main schema. A DB's write connection adds a TEMP table of one
// row, temp.opstate_writer, and a TEMP trigger, which fires for that
// connection's statements only, and stamps every history row the
// connection's statements insert with the actor the table holds (and,
// while the DB sweeps, turns a 'delete' into an 'expire': the sweep judges
// expiry by its owner's clock, which SQLite's need not agree with). A
// change made by any other connection keeps actor NULL: plain SQL.

// historyStamp is SQLite's clock in the stored timestamp form.
const historyStamp = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`

// historySchema creates the history's tables and triggers, in that order
// (schema.go names each). The history has no index but its seq, the
// rowid, to which a change is appended: an index of its keys would be one
// more page written by every recorded change, in a random place, and
// would cost a write about a third more (docs/performance.md); a read of
// a key's history scans the namespace's changes from the newest instead.
// seq is no AUTOINCREMENT, whose counter is one more page too: it is the
// largest seq plus one, and PruneHistory never deletes the largest (it
// empties it, and leaves it to no namespace).
var historySchema = []string{
	`CREATE TABLE IF NOT EXISTS operational_state_history_keep (
	namespace TEXT PRIMARY KEY,
	keep      INTEGER NOT NULL CHECK (keep > 0)
)`,
	`CREATE TABLE IF NOT EXISTS operational_state_history (
	seq               INTEGER PRIMARY KEY,
	at                TEXT NOT NULL,
	namespace         TEXT NOT NULL,
	key               TEXT NOT NULL,
	op                TEXT NOT NULL,
	before            TEXT,
	before_expires_at TEXT,
	after             TEXT,
	after_expires_at  TEXT,
	actor             TEXT
)`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_history_insert
	AFTER INSERT ON operational_state
	WHEN EXISTS (SELECT 1 FROM operational_state_history_keep WHERE namespace = NEW.namespace) BEGIN
	INSERT INTO operational_state_history (at, namespace, key, op, after, after_expires_at)
	VALUES (` + historyStamp + `, NEW.namespace, NEW.key, 'set', NEW.value, NEW.expires_at);
END`,
	// An update that renames a row records the new name as set, and the
	// old one as deleted (the next trigger).
	`CREATE TRIGGER IF NOT EXISTS operational_state_history_update
	AFTER UPDATE ON operational_state
	WHEN EXISTS (SELECT 1 FROM operational_state_history_keep WHERE namespace = NEW.namespace) BEGIN
	INSERT INTO operational_state_history (at, namespace, key, op, before, before_expires_at, after, after_expires_at)
	SELECT ` + historyStamp + `, NEW.namespace, NEW.key, 'set',
		CASE WHEN same THEN OLD.value END, CASE WHEN same THEN OLD.expires_at END, NEW.value, NEW.expires_at
	FROM (SELECT OLD.namespace IS NEW.namespace AND OLD.key IS NEW.key AS same);
END`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_history_rename
	AFTER UPDATE OF namespace, key ON operational_state
	WHEN (OLD.namespace IS NOT NEW.namespace OR OLD.key IS NOT NEW.key)
	AND EXISTS (SELECT 1 FROM operational_state_history_keep WHERE namespace = OLD.namespace) BEGIN
	INSERT INTO operational_state_history (at, namespace, key, op, before, before_expires_at)
	VALUES (` + historyStamp + `, OLD.namespace, OLD.key, 'delete', OLD.value, OLD.expires_at);
END`,
	// A delete of a row that had expired by SQLite's clock is an expiry,
	// whoever made it.
	`CREATE TRIGGER IF NOT EXISTS operational_state_history_delete
	AFTER DELETE ON operational_state
	WHEN EXISTS (SELECT 1 FROM operational_state_history_keep WHERE namespace = OLD.namespace) BEGIN
	INSERT INTO operational_state_history (at, namespace, key, op, before, before_expires_at)
	VALUES (` + historyStamp + `, OLD.namespace, OLD.key,
		CASE WHEN julianday(OLD.expires_at) <= julianday('now') THEN 'expire' ELSE 'delete' END,
		OLD.value, OLD.expires_at);
END`,
}

// migrateV3 adds the history. No namespace keeps any yet.
func migrateV3(ctx context.Context, c *sql.Conn) error {
	for _, q := range historySchema {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// writerTemp creates the write connection's TEMP objects (see above). The
// trigger is created only when temp.sqlite_master lacks it (writerTrigger):
// a DROP TABLE of the history on this connection (a repair, schema.go)
// drops it too, while one on another connection leaves it in place, to
// fire on the table of that name made again, and SQLite then refuses to
// create it again, even with IF NOT EXISTS, as a malformed schema. The
// writer's actor starts unset (NULL), as the DB's record of it
// (writeConn.actorSet) says.
var writerTemp = []string{
	`CREATE TEMP TABLE IF NOT EXISTS opstate_writer (actor TEXT, sweeping INTEGER NOT NULL DEFAULT 0)`,
	`DELETE FROM temp.opstate_writer`,
	`INSERT INTO temp.opstate_writer (actor, sweeping) VALUES (NULL, 0)`,
}

// writerTrigger is the write connection's TEMP trigger.
const writerTrigger = `CREATE TEMP TRIGGER opstate_writer_history
	AFTER INSERT ON main.operational_state_history BEGIN
	UPDATE main.operational_state_history SET
		actor = (SELECT actor FROM temp.opstate_writer),
		op = CASE WHEN NEW.op = 'delete' AND (SELECT sweeping FROM temp.opstate_writer) THEN 'expire' ELSE NEW.op END
	WHERE seq = NEW.seq;
END`

// setWriterActorSQL sets the actor and the sweeping flag of the write
// connection's history rows.
const setWriterActorSQL = `UPDATE temp.opstate_writer SET actor = ?1, sweeping = ?2`

// createWriterTemp creates, on c, the write connection's TEMP objects that
// are missing, and unsets its actor.
func createWriterTemp(ctx context.Context, c *sql.Conn) error {
	for _, q := range writerTemp {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var n int
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM temp.sqlite_master
		WHERE type = 'trigger' AND name = 'opstate_writer_history'`).Scan(&n); err != nil || n > 0 {
		return err
	}
	_, err := c.ExecContext(ctx, writerTrigger)
	return err
}
