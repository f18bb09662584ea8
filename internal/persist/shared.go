package persist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// OpenDB returns a DB over pool, an application's own handle on an SQLite
// database in a file, through any database/sql driver of SQLite
// (modernc.org/sqlite, github.com/mattn/go-sqlite3,
// github.com/ncruces/go-sqlite3): the one copy of SQLite the application
// already uses for the file, so that no second one touches it (see
// foreign.go). It migrates the schema as [Open] does, and switches the
// file to WAL mode, which persists in the file.
//
// The DB takes one connection of pool for its life, its writer, and
// configures it (busy timeout, synchronous); its reads use pool as the
// application does, and wait as the application's own queries do when
// every connection is in use. Close closes that connection and leaves pool
// open: the application closes pool, after the DB.
//
// What it cannot do over another driver: it runs no checkpointer (SQLite
// checkpoints the log itself when a commit, the DB's or the
// application's, finds it past wal_autocheckpoint pages), so
// Options.Maintain is refused; it does not watch for a second SQLite
// library in the process, which only the application can keep out; and
// Options.Readers is refused, the pool being the application's to size.
// A pool that allows one connection is refused: the DB would hold it for
// ever. So is a database that is not a file (in memory, or temporary):
// nobody else could reach what the DB stores there.
//
// OpenDB waits up to Options.BusyTimeout for a connection of pool.
func OpenDB(pool *sql.DB, opts Options) (*DB, error) {
	if pool == nil {
		return nil, errors.New("opstate: OpenDB: the *sql.DB is nil")
	}
	switch {
	case opts.Maintain:
		return nil, errors.New("opstate: OpenDB: no checkpointer runs over an application's pool (Options.Maintain)")
	case opts.Readers != 0:
		return nil, errors.New("opstate: OpenDB: the application's pool sets the readers (Options.Readers)")
	case pool.Stats().MaxOpenConnections == 1:
		return nil, errors.New("opstate: OpenDB: the pool allows one connection, which the store would hold for its life; " +
			"allow at least two (sql.DB.SetMaxOpenConns)")
	}
	opts, busyMS, err := opts.withDefaults("database")
	if err != nil {
		return nil, err
	}
	db := &DB{shared: true, pool: pool, verify: opts.Verify, busyTimeout: opts.BusyTimeout, due: make(chan struct{}, 1), actor: opts.Actor}
	if err := db.attach(busyMS, opts.Sync); err != nil {
		db.Close()
		name := db.path
		if name == "" {
			name = "the application's database"
		}
		return nil, openError(name, db.classify(err))
	}
	db.logger, db.pollInterval = opts.Logger, opts.PollInterval
	if db.logger == nil {
		db.logger = slog.Default()
	}
	return db, nil
}

// attach takes the DB's connection from the pool, configures it, finds the
// database's file and checks it as Open does, then sets the DB up.
func (db *DB) attach(busyMS int64, sync Sync) error {
	ctx, cancel := context.WithTimeout(context.Background(), db.busyTimeout)
	w, err := db.pool.Conn(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no connection of the pool within the busy timeout (%v): %w", db.busyTimeout, err)
	}
	if err != nil {
		return err
	}
	db.w = w
	ctx = context.Background()
	syncMode := "NORMAL"
	if sync == SyncFull {
		syncMode = "FULL"
	}
	for _, q := range []string{fmt.Sprintf("PRAGMA busy_timeout = %d", busyMS), "PRAGMA synchronous = " + syncMode} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var seq int
	var name, file string
	if err := w.QueryRowContext(ctx, "SELECT seq, name, file FROM pragma_database_list WHERE name = 'main'").Scan(&seq, &name, &file); err != nil {
		return err
	}
	if file == "" {
		return errors.New("the database is not in a file (in memory, or temporary), where nobody else could reach it; " +
			"open a file, or Open(\":memory:\") for a private store")
	}
	db.path = file
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if err := checkKind(file, fi); err != nil {
		return err
	}
	return db.setup(ctx)
}
