package storage

import (
	"context"
	"errors"
	"time"
)

// Backend is a database a Store keeps its rows in. Its methods must be
// safe for concurrent use; see the package documentation for how a Store
// calls them.
type Backend interface {
	// Get returns the row of namespace and key, expired or not, and
	// whether it exists. A missing row is not an error.
	Get(ctx context.Context, namespace, key string) (Row, bool, error)

	// List returns every row of namespace that has not expired at now,
	// keyed by key; never nil when the error is nil.
	List(ctx context.Context, namespace string, now int64) (map[string]string, error)

	// Namespaces returns every namespace with rows that have not expired
	// at now, with their number, sorted by name as bytes.
	Namespaces(ctx context.Context, now int64) ([]NamespaceCount, error)

	// Apply commits ws in one transaction, in order, and returns when the
	// commit is durable, with one [Result] per write: results[i] is
	// ws[i]'s. When it returns an error, results are nil and nothing of ws
	// is applied. The backend may reuse the results' memory: they are
	// valid until Apply is called again. now is the batch's time: what PutIfAbsent, Swap and
	// DeleteIf judge expiry by. A write the backend cannot store (see
	// [ErrInvalidText]) fails the batch.
	//
	// ctx is the Store's lifetime, which ends at Close. A batch still
	// waiting then (for a lock another connection or transaction holds)
	// must stop waiting promptly and fail with an error that matches
	// ctx.Err(), which the Store reports as ErrClosed; that error promises
	// that nothing of ws is applied, now or later. A batch that commits
	// regardless returns nil, and one whose fate is unknown (a connection
	// lost during the commit) must not return ctx's error.
	Apply(ctx context.Context, now int64, ws []Write) ([]Result, error)

	// DeleteExpired deletes at most limit rows that expired at or before
	// now, earliest first, in one transaction, and returns their keys.
	// Concurrent sweeps of one database, from any number of Stores, must
	// each return only the rows they deleted. ctx ends it as it ends
	// Apply.
	DeleteExpired(ctx context.Context, now int64, limit int) ([]Key, error)

	// Close releases the backend. The Store calls it once, last.
	Close() error
}

// Notifier is implemented by a [Backend] that pushes the changes others
// commit to it. A Store over a Notifier listens on one [Listener] at a
// time for as long as it is open, and opens another when one fails.
type Notifier interface {
	// Listen starts a stream of the changes committed from now on by
	// anyone but this backend itself (its own writes are the Store's, which
	// knows them): when it returns, every later commit is reported by the
	// listener's Next.
	Listen(ctx context.Context) (Listener, error)
}

// Listener is a stream of changes; see [Notifier]. It is used by one
// goroutine.
type Listener interface {
	// Next waits for changes and returns them (one report may hold
	// many). An error means the stream is broken and changes
	// may have been lost: the Store closes the listener, serves reads from
	// the backend until it listens again, then forgets everything it
	// cached. A listener must notice a dead connection by itself, within a
	// bound it documents (a ping), rather than wait on it forever. Next
	// returns ctx's error when ctx ends.
	Next(ctx context.Context) (Changes, error)

	// Close ends the stream.
	Close() error
}

// Poller is implemented by a [Listener] that finds changes by polling
// the database (SQLite's change log) rather than having them pushed. Such
// a listener's Next returns after every check, with [Changes.Foreign]
// false when nothing was found, and a check that fails is a Reset, not an
// error: the stream goes on. Polling costs a query every interval, so a
// Store that nobody reads or watches stops calling Next, and calls Poll,
// which checks at once, before it serves the next read. Poll is never
// called while Next runs.
type Poller interface {
	Poll(ctx context.Context) (Changes, error)
}

// Backuper is implemented by a backend that can write a consistent copy
// of its database to a file that the same backend opens (SQLite's VACUUM
// INTO); a Store over another backend reports ErrUnsupported for Backup.
type Backuper interface {
	// Backup writes the copy, as of one moment, to a new file at path,
	// with mode 0600, while reads and writes go on. path must not exist
	// (an error matching fs.ErrExist, and what is there is left alone);
	// on failure no file is left at path. ctx ends it early.
	Backup(ctx context.Context, path string) error
}

// Pruner is implemented by a backend that keeps a log of changes in the
// database for its Stores to read (SQLite's change log), which grows with
// every write: a Store's sweep prunes it after deleting expired rows.
type Pruner interface {
	// PruneChanges deletes at most limit of the log's oldest entries
	// beyond the newest keep, in one transaction, and returns how many it
	// deleted. ctx ends it as it ends [Backend.Apply].
	PruneChanges(ctx context.Context, keep, limit int) (int, error)
}

// Historian is implemented by a backend that keeps, in the database, the
// history of the namespaces that ask for it: every change to one of their
// keys, by any writer (a Store, another process, plain SQL), recorded in
// the transaction that makes it. Which namespaces keep history, and how
// many changes each, is stored in the database too, so that every writer
// honours it.
type Historian interface {
	// SetHistory makes namespace keep its last keep changes; keep 0 turns
	// its history off (what it kept is deleted, in bounded batches, by
	// PruneHistory). A negative keep is an error.
	SetHistory(ctx context.Context, namespace string, keep int) error
	// HistoryKeeps returns every namespace that keeps history, with its
	// keep.
	HistoryKeeps(ctx context.Context) (map[string]int, error)
	// History returns at most limit recorded changes of namespace, newest
	// first, with Seq below before (0: from the newest); of key alone
	// unless key is "".
	History(ctx context.Context, namespace, key string, before int64, limit int) ([]Change, error)
	// PruneHistory deletes at most limit changes beyond their namespace's
	// keep, or of a namespace that keeps none, in one transaction, and
	// returns how many it deleted. ctx ends it as it ends [Backend.Apply].
	PruneHistory(ctx context.Context, limit int) (int, error)
}

// RowLister is implemented by a backend that can list a namespace's rows
// with their expiries; a Store over another backend reports
// ErrUnsupported for ListItems.
type RowLister interface {
	// ListRows returns what [Backend.List] returns, read and judged the
	// same way (one snapshot, the same rows left out as expired or as no
	// key), with each row's ExpiresAt, an instant of the Store's clock;
	// never nil when the error is nil.
	ListRows(ctx context.Context, namespace string, now int64) (map[string]Row, error)
}

// ChangeOp says what a recorded [Change] did to its key.
type ChangeOp uint8

const (
	// ChangeSet: the key was given a value (inserted or updated).
	ChangeSet ChangeOp = iota + 1
	// ChangeDelete: the key's row was deleted.
	ChangeDelete
	// ChangeExpire: the key's row was deleted because it had expired (a
	// sweep, or a delete of a row past its expiry).
	ChangeExpire
)

// Change is one recorded change of a key, as [Historian.History] returns
// it.
type Change struct {
	// Seq orders the changes of a database: a later commit has a larger
	// Seq.
	Seq int64
	// Time is when the change was made, in Unix milliseconds of the
	// database's clock.
	Time           int64
	Namespace, Key string
	Op             ChangeOp
	// Existed reports that the key had a row before the change (live or
	// expired but not yet deleted); Before and BeforeExpiresAt are that
	// row's.
	Existed         bool
	Before          string
	BeforeExpiresAt int64
	// After and ExpiresAt are the row the change left, for ChangeSet.
	After     string
	ExpiresAt int64
	// Actor is the Write's Actor, or "" for a change made by plain SQL.
	Actor string
}

// Row is the stored state of one key.
type Row struct {
	Value string
	// ExpiresAt is the absolute expiry, in Unix milliseconds of the
	// Store's clock; 0 means never.
	ExpiresAt int64
}

// Key names one row.
type Key struct {
	Namespace, Key string
}

// NamespaceCount is a namespace and its number of live keys.
type NamespaceCount struct {
	Namespace string
	Live      int
}

// WriteKind says what a [Write] does.
type WriteKind uint8

const (
	// Put upserts Namespace/Key with Value and ExpiresAt.
	Put WriteKind = iota
	// Delete removes Namespace/Key; no matching row is not an error.
	Delete
	// DeleteNamespace removes every row of Namespace.
	DeleteNamespace
	// PutIfAbsent is Put if Namespace/Key is absent: it has no row, or a
	// row that has expired at the batch's time.
	PutIfAbsent
	// Swap sets Value and ExpiresAt, as Put does, if Namespace/Key is live
	// (not expired at the batch's time) and holds Old, compared as bytes.
	Swap
	// DeleteIf removes Namespace/Key if it is live and holds Old.
	DeleteIf
)

// Conditional reports whether a write of kind k may change nothing
// because its condition fails: PutIfAbsent, Swap and DeleteIf.
func (k WriteKind) Conditional() bool { return k >= PutIfAbsent }

// Write is one write of a batch given to [Backend.Apply].
type Write struct {
	Kind                  WriteKind
	Namespace, Key, Value string
	Old                   string // Swap, DeleteIf: the value the key must hold
	ExpiresAt             int64  // Put, PutIfAbsent, Swap: Unix milliseconds of the Store's clock; 0 means never
	// Actor names who makes the write, for the history of a namespace
	// that keeps one (see [Historian]); "" is recorded as no actor.
	Actor string
}

// Result is what one [Write] of a committed batch did, as [Backend.Apply]
// returns it.
type Result struct {
	// Changed reports that the write changed a row (every Put does; a
	// Delete of a missing key, a DeleteNamespace of an empty namespace,
	// and a conditional write whose condition failed do not).
	Changed bool
	// Held is the key's row, and Found whether it exists, right after a
	// conditional write that changed nothing, read in the same transaction:
	// what the key holds, as far as the batch is concerned.
	Held  Row
	Found bool
}

// Changes is what others committed, as a [Listener] reports it (and as
// the SQLite backend's poll does).
type Changes struct {
	// Reset reports that the backend cannot say what changed: anything
	// may have. Keys and Namespaces are then empty.
	Reset bool
	// Keys are the keys others changed, each once, except those of
	// Namespaces.
	Keys []Key
	// Namespaces are namespaces in which others may have changed any key.
	Namespaces []string
	// Expired holds the keys of Keys whose last change by others was the
	// delete of a row that had expired (another Store's sweep).
	Expired map[Key]bool
	// Foreign reports that anyone else committed anything at all; a
	// listener sets it with every report.
	Foreign bool
}

// Errors a backend wraps (with fmt.Errorf's %w) so that a Store's callers
// can match them with errors.Is; package opstate exports the same values.
var (
	// ErrBusy: a write waited longer than its lock timeout for another
	// connection's lock, or the server cancelled it (a statement timeout),
	// and did not happen.
	ErrBusy = errors.New("opstate: database is locked by another connection")
	// ErrCorrupt: the database is damaged. A Store that has seen it
	// refuses every later write.
	ErrCorrupt = errors.New("opstate: database file is corrupt")
	// ErrSchemaVersion: the database was written by a newer opstate.
	ErrSchemaVersion = errors.New("opstate: database schema is newer than this version of opstate")
	// ErrInvalidText: a write would store a namespace, key or value the
	// backend cannot hold byte for byte (PostgreSQL's text: a NUL byte or
	// invalid UTF-8). Nothing is stored.
	ErrInvalidText = errors.New("opstate: string not storable as text (NUL byte or invalid UTF-8)")
	// ErrNotDatabase: the path names something other than a database the
	// backend can open (a directory, a device, a file of another kind).
	ErrNotDatabase = errors.New("opstate: not an SQLite database")
	// ErrInvalidPath: the path or address is malformed for the backend.
	ErrInvalidPath = errors.New("opstate: invalid database path")
	// ErrDiskFull: the database's storage is full; the write did not happen.
	ErrDiskFull = errors.New("opstate: disk full")
	// ErrIO: the storage failed a read or write (see the Store's Caveats
	// for what a failed commit may leave).
	ErrIO = errors.New("opstate: disk I/O error")
	// ErrReadOnly: the database cannot be written; reads go on.
	ErrReadOnly = errors.New("opstate: database is read-only")
	// ErrSchema: a table or another object of the name of one of
	// opstate's is not what opstate made, and cannot be put back without
	// losing data.
	ErrSchema = errors.New("opstate: the database's schema is not opstate's: operational_state must be a table with the columns namespace, key, value, updated_at (TEXT NOT NULL) and expires_at (TEXT), keyed by namespace and key, and any other column of it nullable or with a default")
	// ErrForeignSQLite: code outside the SQLite library the backend uses
	// has the database's files open in this process, and writes can be
	// lost.
	ErrForeignSQLite = errors.New("opstate: the database is open in this process outside modernc.org/sqlite (another SQLite library, or code that opens its files), and writes can be lost: reach the file only through modernc.org/sqlite, the copy opstate uses, or give the other code a file of its own")
)

// DefaultBusyTimeout is how long a write waits for another connection's
// lock when the Store's Options leave BusyTimeout zero, on every backend.
const DefaultBusyTimeout = 5 * time.Second

// EarliestMillis and LatestMillis are the first and the last millisecond
// of the years 0000 to 9999, in Unix milliseconds: the times SQLite's date
// functions read, and so the range of every time that crosses the seam. A
// Store keeps its clock's readings within it.
const (
	EarliestMillis = -62167219200000 // 0000-01-01T00:00:00.000Z
	LatestMillis   = 253402300799999 // 9999-12-31T23:59:59.999Z
)
