package persist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/d8da9184/opstate/storage"
)

var (
	_ storage.Backuper = (*DB)(nil)
	_ storage.Pruner   = (*DB)(nil)
)

// Backup writes a consistent copy of the database, as one read transaction
// sees it, to a new file at dest with mode 0600, by SQLite's VACUUM INTO
// on a read connection: writers are not blocked. dest must not exist
// (fs.ErrExist otherwise, and the file there is left alone), nor be the
// name of a database's -wal, -shm or -journal file (fs.ErrInvalid), which
// SQLite would take for that database's own; on failure no file is left
// at dest. A private database ([DB.Private]) is copied to a file on disk
// likewise.
func (db *DB) Backup(ctx context.Context, dest string) error {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	if suffix, base, ok := sidecarOf(abs); ok {
		return fmt.Errorf("%s is the name of the %s file of database %s: %w", abs, suffix, base, fs.ErrInvalid)
	}
	// A new, empty file (VACUUM INTO writes into one), so that its mode is
	// ours; createFile makes it without opening it, as Open makes a store.
	if err := createFile(abs); err != nil {
		return err
	}
	into := abs
	if db.private {
		into = diskURI(abs)
		defer db.endRead(db.beginRead())
	}
	c, err := db.pool.Conn(ctx)
	if err == nil {
		_, err = c.ExecContext(ctx, "VACUUM INTO ?", into)
		err = errors.Join(err, c.Close())
	}
	if err != nil {
		os.Remove(abs)
		return fmt.Errorf("VACUUM INTO: %w", withSentinel(err))
	}
	return nil
}
