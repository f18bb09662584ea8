package opstate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/d8da9184/opstate/storage"
)

// Errors returned by the Store, matchable with errors.Is. Errors from
// SQLite are wrapped with the matching sentinel where there is one and keep
// the driver's error in their chain.
var (
	// ErrClosed is returned by every method called after [Store.Close],
	// and by a write that Close cut short: one that was waiting for a lock
	// another connection holds, or queued behind one. Such a write did
	// not happen, and will not.
	ErrClosed = errors.New("opstate: store closed")

	// ErrEmptyName is returned for an empty namespace or key, by writes and
	// reads alike; nothing is changed.
	ErrEmptyName = errors.New("opstate: empty namespace or key")

	// ErrInvalidTTL is returned by [Store.SetWithTTL],
	// [Store.SetIfAbsentWithTTL] and [Store.CompareAndSwapWithTTL] for a
	// ttl <= 0; nothing is changed.
	ErrInvalidTTL = errors.New("opstate: ttl must be positive")

	// ErrInvalidOption is returned by [Open] for an [Options] value it
	// cannot honour.
	ErrInvalidOption = errors.New("opstate: invalid option")

	// ErrInvalidPath is returned by [Open] and [NewStore] for a path they
	// do not open, creating nothing: an empty path, and a path beginning
	// with "file:", which SQLite would read as a URI (pass a file path, or
	// ":memory:" for an in-memory store).
	ErrInvalidPath = storage.ErrInvalidPath

	// ErrNotDatabase is returned by [Open] for a path that is a directory
	// or a file that is not an SQLite database, and for a file that two
	// connections could reach through names with write-ahead logs of
	// their own: a file with several hard links, and a file mounted on its
	// own (a bind mount of one file, as docker -v host/state.db:/data/state.db
	// makes; mount the directory instead). So is a database whose -wal,
	// -shm or -journal is not a regular file, is a symbolic link or is a
	// mount point. The message says which. The file is not modified.
	ErrNotDatabase = storage.ErrNotDatabase

	// ErrCorrupt is returned when SQLite finds the database file malformed:
	// by Open for damage it sees there (with [Options.VerifyOnOpen], damage
	// anywhere), and by any read or write that reaches damage. Once a Store
	// has seen it, every write returns ErrCorrupt without touching the file,
	// while reads go on.
	ErrCorrupt = storage.ErrCorrupt

	// ErrSchemaVersion is returned by [Open] for a database written by a
	// newer opstate.
	ErrSchemaVersion = storage.ErrSchemaVersion

	// ErrSchema is returned by [Open] for a file whose table
	// operational_state lacks opstate's columns as opstate made them
	// (TEXT, NOT NULL, keyed by namespace and key), or has another column
	// in its key or one that an insert must name, or whose schema holds
	// something else under the name of one of opstate's tables, indexes
	// or triggers: opstate cannot put that back without losing data. The
	// file is not modified. (Columns an application added that may be
	// NULL or have a default are fine.) (What of opstate's own is
	// merely missing or changed — a change-log trigger dropped, say — Open
	// puts back.) A running Store that finds the same, after the file's
	// schema changed under it, logs it at every check and empties its
	// cache at each, as when a check fails, until the table is fixed.
	ErrSchema = storage.ErrSchema

	// ErrBusy is returned by a write that waited longer than
	// [Options.BusyTimeout] for another process's write lock (over
	// PostgreSQL, for another transaction's row lock, or a call the server
	// cancelled: the role's statement_timeout, pg_cancel_backend). The
	// write did not happen.
	ErrBusy = storage.ErrBusy

	// ErrInvalidText is returned by a write over a backend that cannot
	// store the namespace, key or value byte for byte: PostgreSQL's text
	// holds neither NUL bytes nor invalid UTF-8. Nothing is stored. A
	// Store on SQLite stores every string and never returns it.
	ErrInvalidText = storage.ErrInvalidText

	// ErrUnsupported is returned by a method the Store's backend cannot
	// serve: [Store.Backup] over PostgreSQL, and the history's methods
	// ([Store.SetHistory], [Store.HistoryKeeps], [Store.History],
	// [Store.HistoryBefore], [Store.Revert]) over a backend that keeps no
	// history (one that does not implement [storage.Historian]), and
	// [Store.ListItems] over one that does not implement
	// [storage.RowLister]. It
	// matches errors.ErrUnsupported too.
	ErrUnsupported = fmt.Errorf("opstate: not supported by this storage: %w", errors.ErrUnsupported)

	// ErrDiskFull is returned by a write that did not fit on the disk. The
	// write did not happen. (A disk that fills up just as SQLite must grow
	// the WAL index gives [ErrIO] instead: see there.)
	ErrDiskFull = storage.ErrDiskFull

	// ErrIO is returned when the operating system reported an I/O error,
	// including a write beyond the process's file-size limit
	// (RLIMIT_FSIZE), which SQLite reports as a failed write rather than a
	// full disk, and a full disk met while SQLite grows the WAL index (the
	// -shm file, by 32 KiB every 4096 frames of WAL). A write that fails
	// with it is not served; if the error came while committing (a failed
	// fsync, that WAL index), the write may still be on disk and appear
	// later (see the package's Caveats).
	ErrIO = storage.ErrIO

	// ErrReadOnly is returned by a write ([Store.Set], [Store.SetWithTTL],
	// [Store.Delete], [Store.DeleteNamespace], [Store.DeleteExpired]) that
	// SQLite refused because the database cannot be written: its file
	// system is mounted read-only or turned read-only under the Store, or
	// this process may not write the file, its -wal or -shm, or its
	// directory. The write did not happen; reads go on being served. [Open]
	// returns it when SQLite cannot even read the file for that reason (on
	// a read-only file system without the file's -shm beside it, or with no
	// file at the path). The message names the cause when the file system
	// tells it. A file system that turned read-only under an open Store
	// makes SQLite's writes fail with an I/O error, so the error matches
	// [ErrIO] as well.
	ErrReadOnly = storage.ErrReadOnly

	// ErrForeignSQLite is returned, on Linux, by [Open] and [NewStore] for
	// a file that the process has open outside modernc.org/sqlite, the
	// copy of SQLite opstate uses — through another SQLite library such as
	// github.com/mattn/go-sqlite3, which links a copy of its own — and by
	// every write ([Store.Set], [Store.SetWithTTL], [Store.Delete],
	// [Store.DeleteNamespace], the conditional writes, [Store.DeleteExpired])
	// once the Store has seen that happen, or seen the -wal or -shm it
	// writes to deleted or replaced under it: two copies of SQLite in one
	// process do not see each other's locks, and lose each other's writes.
	// The write did not happen, unless the check that follows its commit
	// found the other library, in which case it may be in the file, as
	// with [ErrIO]. Reads go on being served; the Store writes again only
	// once reopened. Open the file only through modernc.org/sqlite, or
	// give the other code a file of its own. Nothing returns it on other
	// systems (see the package's Caveats).
	ErrForeignSQLite = storage.ErrForeignSQLite
)

// Errors of the history (history.go).
var (
	// ErrNoHistory is returned by [Store.History], [Store.HistoryBefore]
	// and [Store.Revert] for a namespace that keeps no history.
	ErrNoHistory = errors.New("opstate: namespace keeps no history")

	// ErrNoChange is returned by [Store.Revert] for a seq that is not a
	// recorded change of the key (one of another key, one pruned, or
	// none).
	ErrNoChange = errors.New("opstate: no such change")

	// ErrConflict is returned by [Store.Revert] when the key no longer
	// holds what its latest recorded change left: someone changed it in
	// between. Nothing is written; the message says what the key holds.
	ErrConflict = errors.New("opstate: changed since")
)

// callError is the error of a call that failed: "opstate: CALL: CAUSE",
// where CAUSE is the message of the error it wraps, without the "opstate: "
// that begins it, so that messages do not stutter. errors.Is and errors.As
// see the wrapped error.
type callError struct {
	call string
	err  error
}

func (e *callError) Error() string {
	return "opstate: " + e.call + ": " + strings.TrimPrefix(e.err.Error(), "opstate: ")
}

func (e *callError) Unwrap() error { return e.err }

// wrapf wraps err with the call that failed, described by format and args.
func wrapf(err error, format string, args ...any) error {
	return &callError{call: fmt.Sprintf(format, args...), err: err}
}
