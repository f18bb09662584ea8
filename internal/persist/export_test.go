package persist

import (
	"context"
	"database/sql"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// LimitLength sets SQLite's length limit (SQLITE_LIMIT_LENGTH) of the
// write connection to n bytes and returns the one it had, so that a test
// meets the limit without writing a gigabyte.
func (db *DB) LimitLength(n int) (int, error) {
	return sqlite.Limit(db.w, sqlite3.SQLITE_LIMIT_LENGTH, n)
}

// SweepSQL is the sweep's statement, for tests of its query plan.
const SweepSQL = sweepSQL

// Synchronous returns PRAGMA synchronous of the write connection.
func (db *DB) Synchronous() (int, error) {
	var n int
	err := db.w.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&n)
	return n, err
}

// CheckpointFrames is how many frames of the log make CheckpointDue fire.
const CheckpointFrames = checkpointFrames

// Logged returns how many frames the DB counts in the log since the last
// complete checkpoint.
func (db *DB) Logged() int64 { return db.logged.Load() }

// FormatTime is formatTime: the stored form of a time.
var FormatTime = formatTime

// SchemaVersion is the user_version of a fully migrated database.
var SchemaVersion = len(migrations)

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// MemName returns a private database's name in the memdb VFS.
func (db *DB) MemName() string { return db.memName }

// JournalMode returns PRAGMA journal_mode of the write connection.
func (db *DB) JournalMode() (string, error) {
	var m string
	err := db.w.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&m)
	return m, err
}

// OwnLimit is ownLimit: the most own changes recorded between two calls of
// Changes.
const OwnLimit = ownLimit

// OwnRecorded returns how many keys the record of own changes holds.
func (db *DB) OwnRecorded() int {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return len(db.log.own)
}

// GuardDormant reports whether the goroutine that watches for other SQLite
// libraries waits for a write to check again.
func (db *DB) GuardDormant() bool { return db.guard != nil && db.guard.dormant.Load() }

// GuardRunning reports whether that goroutine runs.
func (db *DB) GuardRunning() bool {
	if db.guard == nil || db.guard.done == nil {
		return false
	}
	select {
	case <-db.guard.done:
		return false
	default:
		return true
	}
}

// Explain is what a write that failed with err returns: err, joined to
// the finding of another SQLite library where err is damage and one is
// found.
func (db *DB) Explain(err error) error { return db.guard.explain(err) }

// CreateAtVersion makes a new file at path as the migrations up to version
// v leave it, with nothing after: the file an opstate of that version
// made.
func CreateAtVersion(path string, v int) error {
	pool, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx := context.Background()
	c, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range v {
		if err := migrations[i](ctx, c); err != nil {
			return err
		}
	}
	_, err = c.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	return err
}

// PruneRowsRead is how many rows of the history PruneHistory has read.
func (db *DB) PruneRowsRead() int64 {
	db.prune.mu.Lock()
	defer db.prune.mu.Unlock()
	return db.prune.read
}
