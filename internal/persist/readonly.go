package persist

import (
	"errors"
	"fmt"
	"syscall"
)

// sqliteReadOnlyDBMoved is SQLITE_READONLY_DBMOVED: the database file was
// renamed or deleted while open, so SQLite refuses to write to it.
const sqliteReadOnlyDBMoved = 8 | 4<<8

// classify is [withSentinel], and also names what made the database read-only
// when SQLite's error may come from that: SQLITE_READONLY, SQLITE_CANTOPEN
// (no -shm or -wal can be created beside the file) and SQLITE_IOERR (the
// file system turned read-only under an open database). It then looks at
// the file system (see readOnlyCause) and, if that explains the error,
// wraps it with ErrReadOnly and the cause; an I/O error stays ErrIO as
// well. It runs only on those errors, never on the path of a successful
// statement. A private database has no file to look at.
func (db *DB) classify(err error) error {
	if err == nil {
		return nil // before errors.As, whose target would escape
	}
	if db.private {
		return withSentinel(err)
	}
	code, ok := sqliteCode(err)
	if !ok || errors.Is(err, ErrReadOnly) {
		return withSentinel(err)
	}
	var cause string
	switch code & 0xff {
	case 8: // SQLITE_READONLY
		if code == sqliteReadOnlyDBMoved {
			cause = "the file was renamed or deleted while open"
		} else {
			cause = readOnlyCause(db.path)
		}
		if cause == "" {
			return withSentinel(err)
		}
		return fmt.Errorf("%w (%s): %w", ErrReadOnly, cause, err)
	case 10, 14: // SQLITE_IOERR, SQLITE_CANTOPEN
		if cause = readOnlyCause(db.path); cause == "" {
			return withSentinel(err)
		}
		return fmt.Errorf("%w (%s): %w", ErrReadOnly, cause, withSentinel(err))
	}
	return withSentinel(err)
}

// readOnlyFS wraps an error of the file system that says it is read-only
// (EROFS) with ErrReadOnly.
func readOnlyFS(err error) error {
	if err != nil && errors.Is(err, syscall.EROFS) && !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}
