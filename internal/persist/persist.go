package persist

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// Errors returned by this package, matchable with errors.Is. The opstate
// package exports the same values.
var (
	ErrNotDatabase   = storage.ErrNotDatabase
	ErrCorrupt       = storage.ErrCorrupt
	ErrBusy          = storage.ErrBusy
	ErrDiskFull      = storage.ErrDiskFull
	ErrIO            = storage.ErrIO
	ErrReadOnly      = storage.ErrReadOnly
	ErrSchemaVersion = storage.ErrSchemaVersion
	ErrInvalidPath   = storage.ErrInvalidPath
	// ErrSchema: see schema.go.
	ErrSchema = storage.ErrSchema
	// ErrForeignSQLite: see foreign.go.
	ErrForeignSQLite = storage.ErrForeignSQLite
)

// Sync selects SQLite's synchronous setting for the write connection.
type Sync int

const (
	// SyncNormal (synchronous=NORMAL in WAL mode) makes a commit survive a
	// crash of the process; a power loss may roll back the last commits.
	SyncNormal Sync = iota
	// SyncFull (synchronous=FULL) also makes a commit survive power loss, at
	// the price of an fsync per commit.
	SyncFull
)

// Options configures [Open]. The zero value is valid.
type Options struct {
	// Sync is the durability of commits; default SyncNormal.
	Sync Sync
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection before failing with ErrBusy; default DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Readers is the number of read connections; default 4.
	Readers int
	// Verify runs PRAGMA quick_check before anything is written to the
	// file, and refuses it with ErrCorrupt if SQLite finds it damaged. It
	// reads the whole file.
	Verify bool
	// Maintain runs a goroutine of the DB's own, from Open until Close,
	// that checkpoints the write-ahead log whenever [DB.CheckpointDue]
	// says so.
	Maintain bool
	// PollInterval is how often the listener of [DB.Listen] reads the
	// change log; zero or negative: it reports nothing.
	PollInterval time.Duration
	// Logger is where the DB's goroutines report failures; default
	// slog.Default().
	Logger *slog.Logger
	// Actor is who the DB's sweeps ([DB.DeleteExpired]) are recorded as
	// in the history of a namespace that keeps one; a [Write] names its
	// own. "" is recorded as no actor.
	Actor string
}

// DefaultBusyTimeout is the BusyTimeout of zero Options.
const DefaultBusyTimeout = storage.DefaultBusyTimeout

// MaxLength is the most bytes SQLite stores in one string and in one row:
// its SQLITE_MAX_LENGTH, as modernc.org/sqlite is built. A write whose
// row (namespace, key, value and timestamps, with a few bytes of header)
// is longer fails with SQLite's "string or blob too big".
const MaxLength = 1_000_000_000

// errTooBig says what fits, in front of SQLite's "string or blob too
// big". It is not exported: no retry helps, only a shorter write, and the
// message says so.
var errTooBig = fmt.Errorf("opstate: too long: SQLite stores at most %d bytes in a row, namespace, key and value together", MaxLength)

// timeLayout is the fixed-width form of every timestamp opstate writes.
const timeLayout = "2006-01-02T15:04:05.000Z"

// EarliestMillis and LatestMillis are the first and the last millisecond
// of the years 0000 to 9999, in Unix milliseconds: the times SQLite's date
// functions read, and so the range of every time this package takes and
// returns. A time outside it formats to text SQLite cannot read.
const (
	EarliestMillis = storage.EarliestMillis // 0000-01-01T00:00:00.000Z
	LatestMillis   = storage.LatestMillis   // 9999-12-31T23:59:59.999Z
)

// expiryMillis is expires_at as Unix milliseconds, or NULL for no expiry.
// SQLite's date functions are the one judge of what a stored timestamp
// means, in reads and in the sweep alike, so that every time format SQLite
// reads works and text that is no time at all (NULL here) never expires.
const expiryMillis = `CAST(round((julianday(expires_at) - 2440587.5) * 86400000) AS INTEGER)`

// DB is an open database. Its methods are safe for concurrent use.
type DB struct {
	path    string // absolute; ":memory:" for a private database
	private bool   // opened from ":memory:": see Private
	shared  bool   // pool is the application's (OpenDB): not configured, not closed
	memName string // a private database's name in the memdb VFS
	pool    *sql.DB
	w       *sql.Conn // the one connection that writes

	get, list, namespaces *sql.Stmt     // prepared on pool
	verify                bool          // run quick_check in init
	busyTimeout           time.Duration // Options.BusyTimeout, in whole milliseconds

	// wmu serializes Apply and the end of Checkpoint, and guards wc; in a
	// private database, the reads take it too (beginRead).
	wmu sync.Mutex
	wc  *writeConn // statements prepared on w's driver connection
	// results is Apply's, returned to its caller and reused by the next.
	results []Result

	// The write-ahead log (checkpoint.go). logged counts the frames this
	// DB's commits appended to it since the last complete checkpoint;
	// added to under wmu, read without it.
	logged atomic.Int64
	due    chan struct{}                  // capacity 1: CheckpointDue
	cmu    sync.Mutex                     // one Checkpoint at a time
	hold   atomic.Pointer[checkpointHold] // set while a Checkpoint runs
	// reading counts the reads in progress on the pool by the parity of
	// the readEpoch they began in; readGate is set while the last pass of
	// a Checkpoint holds writes off, and new reads wait for it to close.
	readEpoch atomic.Uint64
	reading   [2]atomic.Int64
	readGate  atomic.Pointer[chan struct{}]

	log logState // the change log (changes.go); guarded by wmu

	prune pruner // PruneHistory's round (prune.go)

	guard *guard // watches for other SQLite libraries (foreign.go); nil for a private database

	logger       *slog.Logger  // Options.Logger
	actor        string        // Options.Actor
	pollInterval time.Duration // Options.PollInterval
	maint        *maintainer   // the checkpointer (maintain.go); nil without Options.Maintain
	checkpoints  atomic.Uint64 // complete checkpoints run by the checkpointer
	heldMax      atomic.Int64  // the longest one of them held writes off, in ns
}

// Open opens the database at path, creating it with mode 0600 when it does
// not exist, and migrates its schema. It fails, leaving the file untouched,
// when path names a directory, lies in a missing directory, or is a file
// that is not an SQLite database.
//
// The path ":memory:", exactly, opens a new private in-memory database
// instead (see [DB.Private]): nothing is created on disk, and every Open
// of ":memory:" is a database of its own, gone at Close. A path that
// begins with "file:", which SQLite would read as a URI, is refused with
// [ErrInvalidPath], as is an empty path; every other path is a file name,
// "./:memory:" and "FILE:x.db" included.
//
// On Linux it refuses with [ErrForeignSQLite] a file that the process has
// open outside this package's copy of SQLite.
func Open(path string, opts Options) (*DB, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	opts, busyMS, err := opts.withDefaults(path)
	if err != nil {
		return nil, err
	}
	useOFDLocks()
	if path == memoryPath {
		return openPrivate(opts, busyMS)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, openError(path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, readOnlyFS(err)
	}
	syncMode := "NORMAL"
	if opts.Sync == SyncFull {
		syncMode = "FULL"
	}
	q := url.Values{}
	q.Set("mode", "rw") // the file exists; SQLite must never create it with its own mode
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyMS))
	q.Add("_pragma", "synchronous("+syncMode+")")
	// Commits checkpoint only as a backstop, at 4096 pages (16 MiB with
	// the default page size): a write that crosses the threshold pays for
	// copying pages and fsyncing the database file, so the owner calls
	// Checkpoint off the write path, well before (checkpoint.go). (The log
	// is not truncated when it restarts: with synchronous=FULL, a commit
	// that must grow the file again costs twice an overwrite.)
	q.Add("_pragma", "wal_autocheckpoint(4096)")
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()

	return open(path, dsn, &DB{path: abs}, opts)
}

// withDefaults returns o with its zero fields filled, and BusyTimeout in
// milliseconds, rounded up, or an error for the Open of path.
func (o Options) withDefaults(path string) (_ Options, busyMS int64, _ error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	busyMS = int64((o.BusyTimeout + time.Millisecond - 1) / time.Millisecond) // rounded up: 1ns waits 1ms, not 0
	if busyMS > math.MaxInt32 {
		return o, 0, fmt.Errorf("opstate: open %s: busy timeout %v is beyond SQLite's %d ms", path, o.BusyTimeout, math.MaxInt32)
	}
	o.BusyTimeout = time.Duration(busyMS) * time.Millisecond // what SQLite waits, and so waitLock
	if o.Readers <= 0 {
		o.Readers = 4
	}
	return o, busyMS, nil
}

// openPrivate opens a new private in-memory database.
func openPrivate(opts Options, busyMS int64) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyMS))
	dsn, name := memoryDSN(q)
	return open(memoryPath, dsn, &DB{path: memoryPath, private: true, memName: name}, opts)
}

// open opens db's pool on dsn and prepares db; path is what the caller
// passed to Open.
func open(path, dsn string, db *DB, opts Options) (*DB, error) {
	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, openError(path, err)
	}
	pool.SetMaxOpenConns(opts.Readers + 1)
	pool.SetMaxIdleConns(opts.Readers + 1)
	pool.SetConnMaxIdleTime(0)
	pool.SetConnMaxLifetime(0)

	db.pool, db.verify, db.busyTimeout, db.due, db.actor = pool, opts.Verify, opts.BusyTimeout, make(chan struct{}, 1), opts.Actor
	if err := db.init(); err != nil {
		db.Close()
		return nil, openError(path, db.classify(err))
	}
	if !db.private {
		g, err := startGuard(db.path)
		if err != nil {
			db.Close()
			return nil, openError(path, err)
		}
		db.guard = g
	}
	db.logger, db.pollInterval = opts.Logger, opts.PollInterval
	if db.logger == nil {
		db.logger = slog.Default()
	}
	if opts.Maintain {
		db.startMaintainer()
	}
	return db, nil
}

func (db *DB) init() error {
	ctx := context.Background()
	w, err := db.pool.Conn(ctx)
	if err != nil {
		return err
	}
	db.w = w
	return db.setup(ctx)
}

// setup checks and migrates the database through db.w, and prepares the
// DB's statements.
func (db *DB) setup(ctx context.Context) error {
	w := db.w
	var err error
	if !db.private {
		if err := checkSize(ctx, w, db.path); err != nil {
			return err
		}
	}
	if db.verify {
		if err := quickCheck(ctx, w); err != nil {
			return err
		}
	}
	if !db.private && !db.shared {
		// A file in WAL mode has its -shm open now: refuse it before a
		// migration writes, if another library has it open too.
		if err := precheck(db.path); err != nil {
			return err
		}
	}
	if db.private {
		err = migratePrivate(ctx, w)
	} else {
		err = migrate(ctx, w, db.busyTimeout, db.verify)
	}
	if err != nil {
		return err
	}
	if err := createWriterTemp(ctx, w); err != nil {
		return err
	}
	if err := db.startLog(ctx); err != nil {
		return err
	}
	prep := func(dst **sql.Stmt, p interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}, query string) {
		if err != nil {
			return
		}
		*dst, err = p.PrepareContext(ctx, query)
	}
	prep(&db.get, db.pool, `SELECT value, `+expiryMillis+` FROM operational_state WHERE namespace = ? AND key = ?`)
	// A row whose namespace or key is not TEXT is no key: Get's text
	// arguments never equal it, and List and Namespaces leave it out.
	prep(&db.list, db.pool, `SELECT key, value, `+expiryMillis+` FROM operational_state
		WHERE namespace = ? AND typeof(key) = 'text' ORDER BY key`)
	prep(&db.namespaces, db.pool, `SELECT namespace, count(*) FROM operational_state
		WHERE typeof(namespace) = 'text' AND typeof(key) = 'text'
		AND (julianday(expires_at) IS NULL OR julianday(expires_at) > julianday(?))
		GROUP BY namespace ORDER BY namespace`)
	if err != nil {
		return err
	}
	// From here on, the writer waits for others' locks in Go, where its
	// owner's context can end the wait (lockwait.go). Open itself, which
	// nothing can interrupt, waited in SQLite's busy handler.
	_, err = w.ExecContext(ctx, "PRAGMA busy_timeout = 0")
	return err
}

// quickCheck runs PRAGMA quick_check on c and returns ErrCorrupt with its
// first findings unless it says ok.
func quickCheck(ctx context.Context, c *sql.Conn) error {
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check(10)")
	if err != nil {
		return err
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			found = append(found, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(found) > 0 {
		return fmt.Errorf("%w: quick_check: %s", ErrCorrupt, strings.Join(found, "; "))
	}
	return nil
}

// Close closes every connection. It is safe to call on a partly opened DB.
//
// Over an application's pool ([OpenDB]), Close closes the DB's own
// connection (which its settings make unfit for the application's use) and
// statements, and leaves the pool open.
func (db *DB) Close() error {
	db.stopMaintainer()
	db.guard.close()
	db.closeWriteConn()
	for _, st := range []*sql.Stmt{db.get, db.list, db.namespaces} {
		if st != nil {
			st.Close()
		}
	}
	var err error
	if db.w != nil {
		if db.shared {
			// driver.ErrBadConn has database/sql close the connection
			// rather than hand it back to the pool.
			db.w.Raw(func(any) error { return driver.ErrBadConn })
		}
		if err = db.w.Close(); errors.Is(err, sql.ErrConnDone) && db.shared {
			err = nil
		}
	}
	if db.shared {
		return err
	}
	return errors.Join(err, db.pool.Close())
}

// Row is the stored state of one key.
type Row = storage.Row

// Reads and contexts: a read in WAL mode waits for no other connection's
// lock (only, briefly, for one recovering the log after a crash), so a
// context has no wait to end. A read whose context has ended fails
// before it begins, with the context's error; one that has begun runs on
// a context that does not end, to its end, since a context that can end
// costs every statement goroutines of database/sql and of the driver.

// Get returns the row of ns and key, expired or not, and whether it exists.
func (db *DB) Get(ctx context.Context, ns, key string) (Row, bool, error) {
	if err := ctx.Err(); err != nil {
		return Row{}, false, err
	}
	var r Row
	var exp sql.NullInt64
	g := db.beginRead()
	err := db.get.QueryRowContext(context.Background(), ns, key).Scan(&r.Value, &exp)
	db.endRead(g)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, false, nil
	}
	if err != nil {
		return Row{}, false, db.classify(err)
	}
	r.ExpiresAt = parseExpiry(exp)
	return r, true, nil
}

// List returns every row of ns whose expiry is after now (Unix
// milliseconds), keyed by key.
func (db *DB) List(ctx context.Context, ns string, now int64) (map[string]string, error) {
	out := make(map[string]string)
	err := db.listLive(ctx, ns, now, func(k string, r Row) { out[k] = r.Value })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listLive calls f with every row of ns whose expiry is after now (Unix
// milliseconds), read in one statement: what List and ListRows return.
func (db *DB) listLive(ctx context.Context, ns string, now int64, f func(key string, r Row)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer db.endRead(db.beginRead())
	rows, err := db.list.QueryContext(context.Background(), ns)
	if err != nil {
		return db.classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var r Row
		var exp sql.NullInt64
		if err := rows.Scan(&k, &r.Value, &exp); err != nil {
			return db.classify(err)
		}
		if r.ExpiresAt = parseExpiry(exp); r.ExpiresAt != 0 && r.ExpiresAt <= now {
			continue
		}
		f(k, r)
	}
	if err := rows.Err(); err != nil {
		return db.classify(err)
	}
	return nil
}

// NamespaceCount is a namespace and its number of live keys.
type NamespaceCount = storage.NamespaceCount

// Namespaces returns every namespace with live keys at now (Unix
// milliseconds), sorted by name.
func (db *DB) Namespaces(ctx context.Context, now int64) ([]NamespaceCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer db.endRead(db.beginRead())
	rows, err := db.namespaces.QueryContext(context.Background(), formatTime(now))
	if err != nil {
		return nil, db.classify(err)
	}
	defer rows.Close()
	var out []NamespaceCount
	for rows.Next() {
		var nc NamespaceCount
		if err := rows.Scan(&nc.Namespace, &nc.Live); err != nil {
			return nil, db.classify(err)
		}
		out = append(out, nc)
	}
	if err := rows.Err(); err != nil {
		return nil, db.classify(err)
	}
	return out, nil
}

// formatTime formats Unix milliseconds in the stored timestamp form.
func formatTime(unixMilli int64) string {
	return time.UnixMilli(unixMilli).UTC().Format(timeLayout)
}

// parseExpiry turns expiryMillis into Unix milliseconds, 0 for none.
func parseExpiry(ms sql.NullInt64) int64 {
	switch {
	case !ms.Valid:
		return 0
	case ms.Int64 == 0:
		// The epoch itself, which 0 cannot say: a millisecond early, so
		// that a read never serves a row the sweep of that instant deletes.
		return -1
	default:
		return ms.Int64
	}
}

// withSentinel wraps SQLite errors that callers act on with this package's
// sentinels, keeping the original error in the chain. It looks at the
// error alone; the DB's methods also look at the file system for an error
// that a read-only one may have caused (see DB.classify).
func withSentinel(err error) error {
	if err == nil {
		return nil
	}
	code, ok := sqliteCode(err)
	if !ok {
		return err
	}
	var sentinel error
	switch code & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		sentinel = ErrBusy
	case 8: // SQLITE_READONLY, with every extended code
		sentinel = ErrReadOnly
	case 10: // SQLITE_IOERR
		sentinel = ErrIO
	case 11: // SQLITE_CORRUPT
		sentinel = ErrCorrupt
	case 13: // SQLITE_FULL
		sentinel = ErrDiskFull
	case 18: // SQLITE_TOOBIG
		sentinel = errTooBig
	case 26: // SQLITE_NOTADB
		sentinel = ErrNotDatabase
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// openError is the error of an Open of path that failed: "opstate: open
// PATH: CAUSE", CAUSE without the "opstate: " its message may begin with,
// so that messages do not stutter; errors.Is sees err.
func openError(path string, err error) error {
	return &pathError{path: path, err: err}
}

type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string {
	return "opstate: open " + e.path + ": " + strings.TrimPrefix(e.err.Error(), "opstate: ")
}

func (e *pathError) Unwrap() error { return e.err }
