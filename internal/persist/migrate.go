package persist

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migrations[i] brings a database at user_version i to version i+1. Each
// runs in its own transaction together with the version bump, and must be
// correct on every file that can be at version i.
var migrations = []func(ctx context.Context, c *sql.Conn) error{
	migrateV1,
	migrateV2,
	migrateV3,
}

// migrate runs the migrations the database on c lacks, puts back what of
// the schema was dropped or changed since (repairSchema), and then
// switches it to WAL mode. A file from a newer opstate is refused before anything is
// written to it. A file that needs migrating is rewritten by it, so it is
// read whole first (PRAGMA quick_check, unless verified says the caller
// has just done so) and refused with ErrCorrupt if damaged; the migration
// runs before the switch to WAL, in the file's own journal mode, so that a
// migration that fails rolls back to exactly the file that was there.
// busyTimeout is how long to wait for other connections' locks.
func migrate(ctx context.Context, c *sql.Conn, busyTimeout time.Duration, verified bool) error {
	var v int
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: file has version %d, this opstate knows up to %d", ErrSchemaVersion, v, len(migrations))
	}
	if v < len(migrations) {
		if !verified {
			if err := quickCheck(ctx, c); err != nil {
				return err
			}
			verified = true
		}
		for {
			done, err := migrateStep(ctx, c)
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	// What the migrations made may have been dropped or changed since
	// (schema.go); a repair, like a migration, runs in the file's own
	// journal mode.
	if _, err := repairSchema(ctx, c, verified); err != nil {
		return err
	}
	// Switching a file to WAL takes an exclusive lock without SQLite's busy
	// handler: when several processes open a file in rollback mode at once,
	// all but one fail at once. The switch is retried here instead, for as
	// long as a statement would wait. On a file in WAL mode already, it
	// writes nothing and takes no write lock, so that Open works while
	// another process writes.
	var mode string
	err := waitLock(ctx, busyTimeout, func() error {
		return c.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
	})
	if err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("cannot switch to WAL journal mode: still %q", mode)
	}
	return nil
}

// migrateStep runs the next migration, if any, and reports whether the
// schema was already current. It reads the version inside the transaction,
// so two processes opening one old file migrate it once.
func migrateStep(ctx context.Context, c *sql.Conn) (done bool, err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var v int
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, err
	}
	switch {
	case v > len(migrations):
		return false, fmt.Errorf("%w: file has version %d, this opstate knows up to %d", ErrSchemaVersion, v, len(migrations))
	case v == len(migrations):
		_, err := c.ExecContext(ctx, "COMMIT")
		return true, err
	}
	if err := migrations[v](ctx, c); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", v+1, err)
	}
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, err
	}
	_, err = c.ExecContext(ctx, "COMMIT")
	return false, err
}

// createTable is the schema of version 1. The table is WITHOUT ROWID: its
// rows live in the primary-key B-tree itself, so an upsert dirties one leaf
// page instead of a table leaf and an index leaf, which halves what a write
// of scattered keys puts in the WAL.
const createTable = `CREATE TABLE %s (
	namespace  TEXT NOT NULL,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	expires_at TEXT,
	PRIMARY KEY (namespace, key)
) WITHOUT ROWID`

// migrateV1 creates the table, or rebuilds one written by the SQLite-only
// opstate (with or without expires_at) in the version-1 form, copying every
// row as it is, and indexes the expiry for the sweeper.
func migrateV1(ctx context.Context, c *sql.Conn) error {
	var tables int
	if err := c.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'operational_state'`).Scan(&tables); err != nil {
		return err
	}
	if tables == 0 {
		if _, err := c.ExecContext(ctx, fmt.Sprintf(createTable, "operational_state")); err != nil {
			return err
		}
	} else {
		var cols int
		if err := c.QueryRowContext(ctx,
			`SELECT count(*) FROM pragma_table_info('operational_state') WHERE name = 'expires_at'`).Scan(&cols); err != nil {
			return err
		}
		expires := "expires_at"
		if cols == 0 {
			expires = "NULL"
		}
		// The index below cannot hold julianday('now'), which changes by
		// the second; such an expiry is pinned to the time of migration,
		// which is what it meant at that moment.
		stmts := []string{
			fmt.Sprintf(createTable, "operational_state_v1"),
			fmt.Sprintf(`INSERT INTO operational_state_v1 (namespace, key, value, updated_at, expires_at)
				SELECT namespace, key, value, updated_at,
				CASE WHEN lower(%[1]s) = 'now' THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now') ELSE %[1]s END
				FROM operational_state`, expires),
			`DROP TABLE operational_state`,
			`ALTER TABLE operational_state_v1 RENAME TO operational_state`,
		}
		for _, q := range stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	}
	_, err := c.ExecContext(ctx, createExpiryIndex)
	return err
}

// createExpiryIndex is the index of version 1, which the sweep walks.
const createExpiryIndex = `CREATE INDEX operational_state_expiry
	ON operational_state (julianday(expires_at)) WHERE expires_at IS NOT NULL`

// changeLog is the schema of version 2: a log of the keys every commit
// changed, whoever made it, filled by triggers in the writing transaction
// itself, so that the sqlite3 shell's plain SQL is logged as opstate's own
// writes are (changes.go reads it). A row is appended per row inserted,
// updated or deleted; an UPDATE that renames a row logs its old name too.
// A delete records in expired whether the row had expired by SQLite's clock
// (1), had not (0) or never expires (NULL), so that a sweep by anyone reads
// as an expiry to the Stores that watch.
// seq is the rowid: each row takes the largest seq plus one, so the rows a
// transaction appends are contiguous and follow every earlier commit's.
var changeLog = []string{
	`CREATE TABLE IF NOT EXISTS operational_state_changes (
	seq       INTEGER PRIMARY KEY,
	namespace TEXT NOT NULL,
	key       TEXT NOT NULL,
	expired   INTEGER
)`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_changes_insert
	AFTER INSERT ON operational_state BEGIN
	INSERT INTO operational_state_changes (namespace, key) VALUES (NEW.namespace, NEW.key);
END`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_changes_update
	AFTER UPDATE ON operational_state BEGIN
	INSERT INTO operational_state_changes (namespace, key) VALUES (NEW.namespace, NEW.key);
END`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_changes_rename
	AFTER UPDATE OF namespace, key ON operational_state
	WHEN OLD.namespace IS NOT NEW.namespace OR OLD.key IS NOT NEW.key BEGIN
	INSERT INTO operational_state_changes (namespace, key) VALUES (OLD.namespace, OLD.key);
END`,
	`CREATE TRIGGER IF NOT EXISTS operational_state_changes_delete
	AFTER DELETE ON operational_state BEGIN
	INSERT INTO operational_state_changes (namespace, key, expired)
	VALUES (OLD.namespace, OLD.key, julianday(OLD.expires_at) <= julianday('now'));
END`,
}

// migrateV2 adds the change log. It starts empty: what happened before it
// existed is not in it, and no Store of this version was open then.
func migrateV2(ctx context.Context, c *sql.Conn) error {
	for _, q := range changeLog {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
