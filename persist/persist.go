package persist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Errors returned by this package, matchable with errors.Is. The opstate
// package exports the same values.
var (
	ErrNotDatabase   = errors.New("opstate: not an SQLite database")
	ErrCorrupt       = errors.New("opstate: database file is corrupt")
	ErrBusy          = errors.New("opstate: database is locked by another connection")
	ErrDiskFull      = errors.New("opstate: disk full")
	ErrIO            = errors.New("opstate: disk I/O error")
	ErrSchemaVersion = errors.New("opstate: database schema is newer than this version of opstate")
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
	// connection before failing with ErrBusy; default 5s.
	BusyTimeout time.Duration
	// Readers is the number of read connections; default 4.
	Readers int
	// Verify runs PRAGMA quick_check before anything is written to the
	// file, and refuses it with ErrCorrupt if SQLite finds it damaged. It
	// reads the whole file.
	Verify bool
}

// timeLayout is the fixed-width form of every timestamp opstate writes.
const timeLayout = "2006-01-02T15:04:05.000Z"

// expiryMillis is expires_at as Unix milliseconds, or NULL for no expiry.
// SQLite's date functions are the one judge of what a stored timestamp
// means, in reads and in the sweep alike, so that every time format SQLite
// reads works and text that is no time at all (NULL here) never expires.
const expiryMillis = `CAST(round((julianday(expires_at) - 2440587.5) * 86400000) AS INTEGER)`

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// DB is an open database. Its methods are safe for concurrent use, except
// that only one [Tx] may be open at a time.
type DB struct {
	path string
	pool *sql.DB
	w    *sql.Conn // the one connection that writes

	get, list, namespaces *sql.Stmt // prepared on pool
	verify                bool      // run quick_check in init
	busyTimeout           time.Duration

	wmu sync.Mutex // serializes Apply and the end of Checkpoint; guards wc
	wc  *writeConn // statements prepared on w's driver connection

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
}

// Open opens the database at path, creating it with mode 0600 when it does
// not exist, and migrates its schema. It fails, leaving the file untouched,
// when path names a directory, lies in a missing directory, or is a file
// that is not an SQLite database.
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("opstate: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opstate: open %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	syncMode := "NORMAL"
	if opts.Sync == SyncFull {
		syncMode = "FULL"
	}
	q := url.Values{}
	q.Set("mode", "rw") // the file exists; SQLite must never create it with its own mode
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous("+syncMode+")")
	// Commits checkpoint only as a backstop, at 4096 pages (16 MiB with
	// the default page size): a write that crosses the threshold pays for
	// copying pages and fsyncing the database file, so the owner calls
	// Checkpoint off the write path, well before (checkpoint.go). (The log
	// is not truncated when it restarts: with synchronous=FULL, a commit
	// that must grow the file again costs twice an overwrite.)
	q.Add("_pragma", "wal_autocheckpoint(4096)")
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()

	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opstate: open %s: %w", path, err)
	}
	pool.SetMaxOpenConns(opts.Readers + 1)
	pool.SetMaxIdleConns(opts.Readers + 1)
	pool.SetConnMaxIdleTime(0)
	pool.SetConnMaxLifetime(0)

	db := &DB{path: abs, pool: pool, verify: opts.Verify, busyTimeout: opts.BusyTimeout, due: make(chan struct{}, 1)}
	if err := db.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opstate: open %s: %w", path, Classify(err))
	}
	return db, nil
}

// prepareFile checks what is at path and creates an empty file with mode
// 0600 when nothing is. It never writes to an existing file.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("opstate: open %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("opstate: open %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("opstate: open %s: is a directory: %w", path, ErrNotDatabase)
	}
	if fi.Size() == 0 {
		return nil // an empty file is an empty database
	}
	f, err = os.Open(path)
	if err != nil {
		return fmt.Errorf("opstate: open %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 100) // the database header
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(sqliteMagic)]) != sqliteMagic {
		return fmt.Errorf("opstate: open %s: %w", path, ErrNotDatabase)
	}
	// Another process may commit or checkpoint between reading the header
	// and the size, neither under a lock: only a mismatch that every one of
	// a few readings agrees on is damage.
	for try := 1; ; try++ {
		err := checkSize(path, head, fi.Size())
		if err == nil {
			return nil
		}
		if try == sizeReadings {
			return fmt.Errorf("opstate: open %s: %w", path, err)
		}
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		if _, err := f.ReadAt(head, 0); err != nil {
			return fmt.Errorf("opstate: open %s: %w", path, err)
		}
		if fi, err = f.Stat(); err != nil {
			return fmt.Errorf("opstate: open %s: %w", path, err)
		}
	}
}

// sizeReadings is how many readings of header and size must all disagree
// before a file is refused as damaged.
const sizeReadings = 5

// checkSize compares the page count in a database header with the size of
// the file, when the header vouches for its count and no journal or log
// may legitimately hold pages the file lacks. A file cut short or grown
// behind SQLite's back is refused with ErrCorrupt before SQLite can write
// to it.
func checkSize(path string, head []byte, size int64) error {
	for _, side := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(path + side); err == nil && fi.Size() > 0 {
			return nil // pages may live there; SQLite will sort it out
		}
	}
	be32 := func(b []byte) uint32 { return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) }
	pageSize := int64(head[16])<<8 | int64(head[17])
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(be32(head[28:32]))
	// The count is valid only when the version-valid-for number matches
	// the change counter (SQLite's own rule).
	if pages == 0 || be32(head[24:28]) != be32(head[92:96]) {
		return nil
	}
	if pages*pageSize != size {
		return fmt.Errorf("%w: header says %d pages of %d bytes, file has %d bytes", ErrCorrupt, pages, pageSize, size)
	}
	return nil
}

func (db *DB) init() error {
	ctx := context.Background()
	w, err := db.pool.Conn(ctx)
	if err != nil {
		return err
	}
	db.w = w
	if db.verify {
		if err := quickCheck(ctx, w); err != nil {
			return err
		}
	}
	if err := migrate(ctx, w, db.busyTimeout); err != nil {
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
	prep(&db.list, db.pool, `SELECT key, value, `+expiryMillis+` FROM operational_state WHERE namespace = ? ORDER BY key`)
	prep(&db.namespaces, db.pool, `SELECT namespace, count(*) FROM operational_state
		WHERE julianday(expires_at) IS NULL OR julianday(expires_at) > julianday(?)
		GROUP BY namespace ORDER BY namespace`)
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
func (db *DB) Close() error {
	db.closeWriteConn()
	for _, st := range []*sql.Stmt{db.get, db.list, db.namespaces} {
		if st != nil {
			st.Close()
		}
	}
	var err error
	if db.w != nil {
		err = db.w.Close()
	}
	return errors.Join(err, db.pool.Close())
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Row is the stored state of one key.
type Row struct {
	Value string
	// ExpiresAt is the absolute expiry in Unix nanoseconds, a whole number
	// of milliseconds; 0 means never.
	ExpiresAt int64
}

// Get returns the row of ns and key, expired or not, and whether it exists.
func (db *DB) Get(ctx context.Context, ns, key string) (Row, bool, error) {
	var r Row
	var exp sql.NullInt64
	g := db.beginRead()
	err := db.get.QueryRowContext(ctx, ns, key).Scan(&r.Value, &exp)
	db.endRead(g)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, false, nil
	}
	if err != nil {
		return Row{}, false, Classify(err)
	}
	r.ExpiresAt = parseExpiry(exp)
	return r, true, nil
}

// List returns every row of ns whose expiry is after now (Unix
// nanoseconds), keyed by key.
func (db *DB) List(ctx context.Context, ns string, now int64) (map[string]string, error) {
	defer db.endRead(db.beginRead())
	rows, err := db.list.QueryContext(ctx, ns)
	if err != nil {
		return nil, Classify(err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var k, v string
		var exp sql.NullInt64
		if err := rows.Scan(&k, &v, &exp); err != nil {
			return nil, Classify(err)
		}
		if e := parseExpiry(exp); e != 0 && e <= now {
			continue
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, Classify(err)
	}
	return out, nil
}

// NamespaceCount is a namespace and its number of live keys.
type NamespaceCount struct {
	Namespace string
	Live      int
}

// Namespaces returns every namespace with live keys at now (Unix
// nanoseconds), sorted by name.
func (db *DB) Namespaces(ctx context.Context, now int64) ([]NamespaceCount, error) {
	defer db.endRead(db.beginRead())
	rows, err := db.namespaces.QueryContext(ctx, FormatTime(now))
	if err != nil {
		return nil, Classify(err)
	}
	defer rows.Close()
	var out []NamespaceCount
	for rows.Next() {
		var nc NamespaceCount
		if err := rows.Scan(&nc.Namespace, &nc.Live); err != nil {
			return nil, Classify(err)
		}
		out = append(out, nc)
	}
	if err := rows.Err(); err != nil {
		return nil, Classify(err)
	}
	return out, nil
}

// FormatTime formats Unix nanoseconds in the stored timestamp form,
// truncated to the millisecond.
func FormatTime(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(timeLayout)
}

// parseExpiry turns expiryMillis into Unix nanoseconds, 0 for none.
func parseExpiry(ms sql.NullInt64) int64 {
	if !ms.Valid {
		return 0
	}
	const lo, hi = math.MinInt64 / int64(time.Millisecond), math.MaxInt64 / int64(time.Millisecond)
	switch n := ms.Int64; {
	case n == 0:
		return 1 // the epoch itself: expired, and distinct from "never"
	case n < lo:
		return 1
	case n > hi:
		return math.MaxInt64
	default:
		return n * int64(time.Millisecond)
	}
}

// Classify wraps SQLite errors that callers act on with this package's
// sentinels, keeping the original error in the chain.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	var sentinel error
	switch se.Code() & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		sentinel = ErrBusy
	case 10: // SQLITE_IOERR
		sentinel = ErrIO
	case 11: // SQLITE_CORRUPT
		sentinel = ErrCorrupt
	case 13: // SQLITE_FULL
		sentinel = ErrDiskFull
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
