package opstate

import (
	"fmt"
	"github.com/d8da9184/opstate/storage"
	"log/slog"
	"math"
	"time"
)

// Durability selects what a nil error from a write promises.
type Durability int

const (
	// DurabilityNormal makes every acknowledged write survive a crash or
	// SIGKILL of the process (SQLite WAL mode, synchronous=NORMAL). A power
	// loss or kernel crash may lose the last writes before it.
	DurabilityNormal Durability = iota
	// DurabilityFull also makes acknowledged writes survive power loss
	// (synchronous=FULL: a sync of the log per commit). Writes are slower.
	// The sync is fsync(2), or fdatasync(2), as durable, with
	// [Options.Fdatasync] FdatasyncOn.
	DurabilityFull
)

func (d Durability) String() string {
	switch d {
	case DurabilityNormal:
		return "normal"
	case DurabilityFull:
		return "full"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// Defaults for zero [Options] fields.
const (
	DefaultCacheBytes    = 32 << 20
	DefaultSweepInterval = time.Minute
	DefaultBusyTimeout   = storage.DefaultBusyTimeout
	DefaultSyncInterval  = 5 * time.Millisecond
)

// MaxBusyTimeout is the longest [Options.BusyTimeout]: SQLite's busy
// timeout is an int of milliseconds, and 2^31-1 of them are about 24.8
// days.
const MaxBusyTimeout = math.MaxInt32 * time.Millisecond

// Options configures [Open], [OpenDB] and [OpenBackend]. The zero value
// gives the defaults that [NewStore] uses; each constructor copies and
// validates it. "SQLite" below means a Store of Open or of OpenDB; over
// OpenDB, the settings SQLite keeps per connection apply to the Store's
// own connection, not to the application's.
type Options struct {
	// CacheBytes bounds the memory of the read cache: keys, values and
	// per-entry overhead of all namespaces together, negative entries
	// included. Zero means DefaultCacheBytes (32 MiB); a negative value
	// disables the cache, so that every Get reads SQLite. Every backend.
	CacheBytes int64

	// SweepInterval is how often the background sweeper runs
	// [Store.DeleteExpired]. The first sweep runs one interval after Open.
	// Zero means DefaultSweepInterval (one minute); a negative value
	// disables the background sweeper (expired keys are still never
	// served, and DeleteExpired can be called by hand). Every backend.
	SweepInterval time.Duration

	// Durability is what a nil error from a write promises; default
	// DurabilityNormal. SQLite only: over PostgreSQL the server's
	// synchronous_commit decides, and pgstate.Open refuses nothing here.
	Durability Durability

	// Fdatasync says whether Open switches modernc.org/sqlite to sync
	// commits with fdatasync(2) rather than fsync(2): a switch of the
	// whole process, which opstate only ever turns on (see [Fdatasync]).
	// The default, FdatasyncLeave, leaves it as it is; FdatasyncOn turns
	// it on, and is refused where it is unavailable and by OpenDB over
	// another driver than modernc.org/sqlite. SQLite only: pgstate.Open
	// ignores it.
	Fdatasync Fdatasync

	// BusyTimeout is how long a write waits for another process holding the
	// database's write lock before failing with [ErrBusy]; [Store.Close]
	// ends the wait at once, and the write fails with [ErrClosed],
	// unapplied. Zero means DefaultBusyTimeout (5s). SQLite counts it in
	// whole milliseconds: a timeout that is not a whole number of them is
	// rounded up (a nanosecond waits a millisecond), and one beyond
	// MaxBusyTimeout, or negative, is refused with [ErrInvalidOption].
	// Every backend: over PostgreSQL it is the server's lock_timeout.
	BusyTimeout time.Duration

	// SyncInterval bounds how long a write committed by anyone else —
	// another Store on the same file, in this process or another, the
	// opstate command, the sqlite3 shell — can go unseen by this Store's
	// reads. Every SyncInterval the Store asks SQLite whether another
	// connection has committed (PRAGMA data_version, one cheap query on the
	// write connection); if one has, it reads the change log for the keys
	// the commit changed, drops just those from its cache and sends their
	// events to watchers (a commit to other tables of the file costs the
	// cache nothing). A Store that nobody reads or watches for 20
	// intervals stops checking, and its next read checks first. Zero
	// means DefaultSyncInterval (5ms); a negative
	// value turns the check off, for
	// a Store that is the file's only writer. An in-memory store
	// (":memory:") has no other writer, and never checks. Over
	// PostgreSQL (module pgstate), others' writes are pushed as they
	// commit, and SyncInterval is instead how often the idle listener
	// pings its connection (see pgstate.Open).
	SyncInterval time.Duration

	// VerifyOnOpen makes Open (and OpenDB) read the whole file with SQLite's
	// quick_check before writing anything to it, and refuse a damaged file
	// with [ErrCorrupt]. Without it, Open catches a truncated file or a
	// damaged header, and damage inside the file surfaces as ErrCorrupt
	// from the reads and writes that reach it. It costs a read of the
	// whole file at every Open. SQLite only; pgstate.Open ignores it.
	VerifyOnOpen bool

	// Clock returns the current time; default time.Now. Expiry is computed
	// and checked with it, which lets tests move time without sleeping.
	// Any time.Time works, the zero time included: the Store keeps times to
	// the millisecond within the years 0000 to 9999 (what SQLite's date
	// functions read), and reads a clock outside them as the nearest end,
	// where time stands still. Leases are judged by this clock too: two
	// Stores whose clocks disagree by d may both see themselves holding
	// one for d (see the lease Example). Every backend; over PostgreSQL
	// the server's clock judges expiry in the database, and this clock
	// the entries cached.
	Clock func() time.Time

	// ServeStaleOnOutage keeps reads served from the cache while the
	// change stream of a backend that pushes changes (PostgreSQL's
	// LISTEN) is down, for toggles where a stale answer beats an error or
	// a slower read. By default such reads bypass the cache, so that none
	// is staler than the stream's bound: they read the database, and fail
	// when it is unreachable. The cache is emptied either way once the
	// stream is back. A Store on SQLite has no such stream and ignores it.
	ServeStaleOnOutage bool

	// Logger receives what the Store's background goroutines cannot return
	// to a caller: failed sweeps, checkpoints and checks for other writers,
	// at level Warn, and sweep counts, at Debug. Default slog.Default(). A
	// Logger that panics does not stop the Store or the process: the panic
	// is recovered and the report is lost. Every backend; the SQLite
	// backend's own goroutines (its checkpointer and its poll of the
	// change log) report to it too.
	Logger *slog.Logger

	// Actor names who the Store's writes are recorded as, in the history
	// of a namespace that keeps one ([Store.SetHistory]), as are the
	// expiries its sweeps delete; [Store.As] writes as another. Empty
	// means "USER@HOST": the user name of os/user (else $USER) and
	// os.Hostname. An actor with a control character, invalid UTF-8 or
	// over 256 bytes is refused with [ErrInvalidOption]. Every backend
	// that keeps history.
	Actor string
}

// withDefaults returns o with its zero fields filled, or an error for a
// value that cannot be honoured.
func (o Options) withDefaults() (Options, error) {
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.BusyTimeout < 0 {
		return o, fmt.Errorf("%w: negative BusyTimeout %v", ErrInvalidOption, o.BusyTimeout)
	}
	if o.BusyTimeout > MaxBusyTimeout {
		return o, fmt.Errorf("%w: BusyTimeout %v is beyond MaxBusyTimeout (%v)", ErrInvalidOption, o.BusyTimeout, MaxBusyTimeout)
	}
	if o.Durability != DurabilityNormal && o.Durability != DurabilityFull {
		return o, fmt.Errorf("%w: unknown %v", ErrInvalidOption, o.Durability)
	}
	if o.Fdatasync != FdatasyncLeave && o.Fdatasync != FdatasyncOn {
		return o, fmt.Errorf("%w: unknown %v", ErrInvalidOption, o.Fdatasync)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Actor == "" {
		o.Actor = defaultActor()
	} else if err := checkActor(o.Actor); err != nil {
		return o, err
	}
	return o, nil
}
