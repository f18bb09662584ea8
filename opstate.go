package opstate

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/d8da9184/opstate/internal/cache"
	"github.com/d8da9184/opstate/internal/persist"
	"github.com/d8da9184/opstate/storage"
)

// Store is a namespaced key-value store backed by one SQLite file (opened
// by opstate, or through the application's own *sql.DB), or by another
// database (PostgreSQL, with module github.com/d8da9184/opstate/pgstate).
// Its methods are safe for concurrent use. Create it with [NewStore],
// [Open], [OpenDB] or [OpenBackend] and release it with [Store.Close].
type Store struct {
	be         storage.Backend // where the rows are kept
	serveStale bool            // Options.ServeStaleOnOutage
	cache      *cache.Cache    // with a zero budget when Options.CacheBytes < 0
	committer  committer
	clock      func() time.Time
	log        *slog.Logger

	// state holds stateClosed, set first by Close; stateDormant, set
	// while the poller of others' writes sleeps (sync.go); and
	// stateBypass, set while a backend's change stream is down (listen.go).
	// The hot read path checks all three with one load.
	state atomic.Uint32
	// closeOnce runs Close's work once; a concurrent Close waits for it.
	// closeErr is written inside it.
	closeOnce sync.Once
	closeErr  error
	// inFlight is held shared by every operation that uses db, from its
	// closed check to its last statement, and exclusively by Close while it
	// waits for them to finish.
	inFlight sync.RWMutex

	// ctx is the Store's lifetime: the sweeper and shared sweeps run on it,
	// and Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Store starts: the listener's follower, watchers', the sweeper, DeleteExpired's
	sweeps singleflight.Group

	feed feed // Watch's (watch.go)

	// self writes as Options.Actor: the Store's own write methods are its.
	self Writer

	// syncMu serializes the ends of dormancy (resume) and guards poller;
	// wake tells the sleeping listener that one ended.
	syncMu   sync.Mutex
	poller   storage.Poller // the listener, when it polls; nil otherwise
	wake     chan struct{}
	counters counters // Stats' (stats.go)

	// beforeDormant is a test hook: the poller runs it once it has decided
	// to sleep, before it does.
	beforeDormant atomic.Pointer[func()]
}

// NewStore opens the store at path with default [Options], creating the
// file (mode 0600) when it does not exist. NewStore(":memory:") opens a new
// private in-memory store, for tests: see [Open]. It fails as Open does,
// with [ErrForeignSQLite] for a file another SQLite library of the process
// has open.
func NewStore(path string) (*Store, error) {
	return Open(path, Options{})
}

// Open opens the store at path, creating the file (mode 0600) when it does
// not exist and migrating a file of an earlier opstate. It fails with a
// clear error, leaving the file untouched, when path is in a missing
// directory, is a directory, is not an SQLite database, or is a file that
// a second name or a mount would give a write-ahead log of its own, such
// as a single file bind-mounted into a container ([ErrNotDatabase]). On
// Linux it refuses with [ErrForeignSQLite] a file
// that the process has open outside modernc.org/sqlite, the copy of SQLite
// opstate uses (github.com/mattn/go-sqlite3, say): the two copies would
// lose each other's writes. The application may open the file through
// modernc.org/sqlite, and keep tables of its own in it.
//
// The first Open in a process has modernc.org/sqlite take OFD locks on
// database files, on Linux, unless the environment sets
// MODERNC_SQLITE_OFD_LOCK (see the package's Caveats). An Open with
// [Options.Fdatasync] FdatasyncOn has it sync commits with fdatasync(2),
// process-wide (see [Fdatasync]).
//
// The path ":memory:", exactly, opens a new private in-memory store
// instead, for tests: nothing is created on disk, every Open of ":memory:"
// is a store of its own that no other Store, process or tool can reach,
// and its data is gone at Close. Every method works as on a file, Backup
// included, which writes a file that Open can read; Durability,
// Fdatasync and SyncInterval have nothing to do. A path beginning with
// "file:", which SQLite would read as a URI, is refused with
// [ErrInvalidPath] and creates nothing, as is an empty path. Every other path is a file name, byte for
// byte: "./:memory:" is a file named ":memory:", and a "?" is part of the
// name.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	popts := persist.Options{BusyTimeout: opts.BusyTimeout, Verify: opts.VerifyOnOpen, Maintain: true,
		PollInterval: opts.SyncInterval, Logger: opts.Logger, Actor: opts.Actor}
	if opts.Durability == DurabilityFull {
		popts.Sync = persist.SyncFull
	}
	if path != ":memory:" { // nothing to sync
		if err := switchFdatasync(opts, true); err != nil {
			return nil, err
		}
	}
	db, err := persist.Open(path, popts)
	if err != nil {
		return nil, err
	}
	return start(db, opts)
}

// OpenDB returns a Store over db, the application's own handle on an
// SQLite database in a file, through whichever database/sql driver of
// SQLite the application uses (modernc.org/sqlite,
// github.com/mattn/go-sqlite3, github.com/ncruces/go-sqlite3): the safe
// way to keep the Store's table in a file the application reaches through
// another SQLite library than opstate's, since two copies of SQLite in one
// process lose each other's writes (see [ErrForeignSQLite]). It migrates
// the schema as Open does, and switches the file to WAL mode, which
// persists in the file. The application may keep tables of its own in the
// file and write them through db while the Store works.
//
// The Store does not own db: its Close leaves db open, and the application
// closes db after it. The Store takes one connection of db for its life,
// its writer, configured by Durability and BusyTimeout, and closed by
// Close rather than given back; its reads that miss the cache use db's
// pool as the application's queries do. A pool that allows only one
// connection is refused, as is a database that is not a file (in memory,
// or temporary). OpenDB waits up to BusyTimeout for a connection.
//
// Every guarantee of a Store opened with Open holds, except these, which
// need opstate's own copy of SQLite or its own connections:
//   - It does not watch for a second SQLite library on the file
//     ([ErrForeignSQLite]): the application, which chose the driver, must
//     keep every other copy of SQLite away from the file.
//   - No checkpointer runs in the background: SQLite checkpoints the log
//     itself when a commit, the Store's or the application's, finds it
//     past wal_autocheckpoint pages (1000 by default), and that commit
//     pays for the copy.
//   - The file's place and kind are checked once, at OpenDB; the file's
//     mode is whatever the application created it with.
func OpenDB(db *sql.DB, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	popts := persist.Options{BusyTimeout: opts.BusyTimeout, Verify: opts.VerifyOnOpen,
		PollInterval: opts.SyncInterval, Logger: opts.Logger, Actor: opts.Actor}
	if opts.Durability == DurabilityFull {
		popts.Sync = persist.SyncFull
	}
	if db != nil { // persist.OpenDB refuses a nil db
		if err := switchFdatasync(opts, moderncPool(db)); err != nil {
			return nil, err
		}
	}
	b, err := persist.OpenDB(db, popts)
	if err != nil {
		return nil, err
	}
	return start(b, opts)
}

// OpenBackend returns a Store that keeps its rows in b, a backend of
// package storage: how module github.com/d8da9184/opstate/pgstate makes a
// Store over PostgreSQL. The Store owns b from then on: its Close closes
// b, and so does an OpenBackend that fails.
//
// Every Options field means for b what it means for a file, except those
// that configure SQLite itself (Durability, BusyTimeout, VerifyOnOpen),
// which b's own constructor reads or ignores, and SyncInterval: over a
// backend that implements [storage.Notifier], the Store listens for
// others' changes instead of polling, and a negative SyncInterval turns
// listening off (for a Store that is the database's only writer); over a
// backend that implements neither, the Store is taken for the only
// writer. OpenBackend listens once before it returns, and fails if that
// fails.
func OpenBackend(b storage.Backend, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		b.Close()
		return nil, err
	}
	return start(b, opts)
}

// start makes the Store over b and starts its goroutines; opts has its
// defaults.
func start(b storage.Backend, opts Options) (*Store, error) {
	s := &Store{be: b, clock: opts.Clock, log: opts.Logger, serveStale: opts.ServeStaleOnOutage}
	s.self = Writer{s: s, actor: opts.Actor}
	s.cache = cache.New(opts.CacheBytes) // a negative budget holds nothing; writes still go through it
	s.cache.CountHits(s.counters.hits.load)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.committer = committer{be: b, ctx: s.ctx, cache: s.cache, now: s.now, feed: &s.feed}
	if n, ok := b.(storage.Notifier); ok && opts.SyncInterval > 0 {
		l, err := n.Listen(s.ctx)
		if err != nil {
			s.cancel()
			return nil, errors.Join(wrapf(err, "listen"), b.Close())
		}
		s.wake = make(chan struct{}, 1)
		s.wg.Add(1)
		go s.listen(n, l)
	}
	if opts.SweepInterval > 0 {
		s.every(opts.SweepInterval, s.sweepInBackground)
	}
	return s, nil
}

// every starts a goroutine that calls f every interval until Close. A
// panic in f (a Logger's, say) is recovered: nobody could catch it.
func (s *Store) every(interval time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.guard(f)
			}
		}
	}()
}

// guard runs f, recovering from a panic in it, which it reports to the
// Logger; a panic of the Logger itself is recovered and lost.
func (s *Store) guard(f func()) {
	defer func() {
		if r := recover(); r != nil {
			defer func() { recover() }()
			s.log.Error("opstate: background task panicked", "panic", r)
		}
	}()
	f()
}

// Close stops the Store's goroutines, waits for the operations in
// progress, and closes the database. Every method called after Close
// returns [ErrClosed]; a second Close returns nil once the first has
// finished.
//
// A write waiting for a lock another connection holds (another process's
// write lock on SQLite, another transaction's row lock on PostgreSQL)
// does not hold Close up for its BusyTimeout: it stops waiting at once
// and fails with an error matching ErrClosed, as do the writes queued
// behind it and the background sweep; none of them is applied, then or
// later. On PostgreSQL the Store asks the server to cancel the write, and
// reports the server's answer: ErrClosed once it rolled the write back,
// nil if it had committed it; a read waiting there for a lock (a table
// another session locked) fails with ErrClosed too. What Close does wait
// for is the statement in progress: a commit under way, a read on SQLite
// (which waits for no lock), a batch of a sweep, and a Backup, which
// copies the whole file in one statement.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.state.Or(stateClosed)
		s.cancel()
		s.inFlight.Lock() // waits for the operations that passed their closed check
		//lint:ignore SA2001 the empty section is that barrier
		s.inFlight.Unlock()
		s.wg.Wait()
		s.cache.Clear()
		if err := s.be.Close(); err != nil {
			s.closeErr = wrapf(err, "close")
		}
	})
	if !first {
		return nil // a Close racing the first has waited for it to finish
	}
	return s.closeErr
}

// using runs f, which uses the database, between enter and the matching
// RUnlock, which a panic in f does not skip (Close would wait forever). It
// returns ErrClosed without running f after Close.
func (s *Store) using(f func()) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inFlight.RUnlock()
	f()
	return nil
}

// Bits of Store.state.
const (
	stateClosed  = 1 << iota // Close has begun
	stateDormant             // the poller of others' writes sleeps
	stateBypass              // the backend's change stream is down: reads bypass the cache
)

// isClosed reports whether Close has begun.
func (s *Store) isClosed() bool { return s.state.Load()&stateClosed != 0 }

// enter marks the start of an operation that uses the database. When it
// returns nil, the caller must call s.inFlight.RUnlock when done.
func (s *Store) enter() error {
	s.inFlight.RLock()
	if s.isClosed() {
		s.inFlight.RUnlock()
		return ErrClosed
	}
	return nil
}

// Get returns the value of key in namespace, or "" and a nil error when the
// key does not exist or has expired. A key cached in memory costs no I/O and
// no allocation. Use [Store.Lookup] to tell an empty value from a missing
// key.
func (s *Store) Get(namespace, key string) (string, error) {
	v, _, err := s.Lookup(namespace, key)
	return v, err
}

// Lookup is like [Store.Get] and also reports whether the key exists.
func (s *Store) Lookup(namespace, key string) (value string, ok bool, err error) {
	st := s.state.Load()
	if st&stateClosed != 0 {
		return "", false, ErrClosed
	}
	if namespace == "" || key == "" {
		return "", false, ErrEmptyName
	}
	if st&(stateDormant|stateBypass) != 0 {
		if st&stateBypass != 0 && !s.serveStale {
			return s.read(namespace, key) // the cache may miss others' changes now
		}
		if st&stateDormant != 0 {
			s.resume() // check for others' writes first: nobody has for a while
			// The check does not run once Close has begun (it cannot
			// enter), and the cache is then as old as the poller's sleep.
			if s.isClosed() {
				return "", false, ErrClosed
			}
		}
	}
	if e, hit := s.cache.Get(namespace, key); hit {
		s.counters.hits.add()
		// visible's answer for the entries that need no clock, without
		// the call, which cost a cached Get about what counting it does.
		switch {
		case e.Absent:
			return "", false, nil
		case e.ExpiresAt == 0:
			return e.Value, true, nil
		}
		return s.visible(e)
	}
	return s.load(namespace, key)
}

// visible returns what a read of e returns, given the clock; the clock is
// read only for an entry that can expire.
func (s *Store) visible(e cache.Entry) (string, bool, error) {
	if e.Absent {
		return "", false, nil
	}
	if e.ExpiresAt != 0 {
		now, err := s.now()
		if err != nil {
			return "", false, err
		}
		if now >= e.ExpiresAt {
			return "", false, nil
		}
	}
	return e.Value, true, nil
}

// load reads a key the cache does not hold from storage and caches the
// result, unless a write to the key happened meanwhile.
func (s *Store) load(ns, key string) (string, bool, error) {
	t := s.cache.Token(ns, key)
	e, err := s.get(ns, key)
	if err != nil {
		return "", false, err
	}
	s.cache.Fill(ns, key, e, t)
	return s.visible(e)
}

// read reads a key from storage, past the cache, and caches nothing.
func (s *Store) read(ns, key string) (string, bool, error) {
	e, err := s.get(ns, key)
	if err != nil {
		return "", false, err
	}
	return s.visible(e)
}

// readError is what a read that failed with err reports: ErrClosed once
// Close has begun, since Close ends the reads that wait on the server (a
// table another session locks, on PostgreSQL: the Store's context, given
// to every read, ends); otherwise err, noted if it says the file is
// damaged.
func (s *Store) readError(err error) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	s.noteDamage(err)
	return err
}

// get reads a key from storage, as the entry to cache, counting a miss.
func (s *Store) get(ns, key string) (cache.Entry, error) {
	var row storage.Row
	var found bool
	var err error
	if err := s.using(func() {
		s.counters.misses.Add(1)
		row, found, err = s.be.Get(s.ctx, ns, key)
	}); err != nil {
		return cache.Entry{}, err
	}
	if err != nil {
		return cache.Entry{}, wrapf(s.readError(err), "get %q/%q", ns, key)
	}
	return cache.Entry{Value: row.Value, ExpiresAt: row.ExpiresAt, Absent: !found}, nil
}

// Set stores value under key in namespace, replacing any value and clearing
// any expiry. When it returns nil, the write is committed to disk (see
// [Durability]) and every later Get sees it. SQLite stores at most
// 1,000,000,000 bytes in a row, namespace, key and value together: a
// longer write fails with an error that says so, and stores nothing.
func (s *Store) Set(namespace, key, value string) error {
	return s.self.Set(namespace, key, value)
}

// SetWithTTL is like [Store.Set], and the key expires ttl from now: from
// then on it reads as missing, and the sweeper deletes it. The expiry is
// kept to the millisecond (rounded up). A ttl <= 0 returns [ErrInvalidTTL].
func (s *Store) SetWithTTL(namespace, key, value string, ttl time.Duration) error {
	return s.self.SetWithTTL(namespace, key, value, ttl)
}

// Delete removes key from namespace. Deleting a missing key is not an
// error.
func (s *Store) Delete(namespace, key string) error {
	return s.self.Delete(namespace, key)
}

// DeleteNamespace removes every key of namespace. Deleting an empty or
// missing namespace is not an error.
func (s *Store) DeleteNamespace(namespace string) error {
	return s.self.DeleteNamespace(namespace)
}

// write commits pw through the committer and reports whether it changed
// a row ([storage.Result.Changed]); op names the call in errors.
func (s *Store) write(pw storage.Write, op string) (bool, error) {
	res, err := s.writeResult(pw, op)
	return res.Changed, err
}

// writeResult is write, returning the write's whole [storage.Result].
func (s *Store) writeResult(pw storage.Write, op string) (storage.Result, error) {
	r := &request{Write: pw}
	var err error
	if uerr := s.using(func() {
		if err = s.refuseDamaged(); err == nil {
			err = s.noteDamage(s.committer.do(r))
		}
	}); uerr != nil {
		return storage.Result{}, uerr
	}
	switch {
	case err == nil:
		return r.res, nil
	case pw.Key != "":
		return storage.Result{}, wrapf(err, "%s %q/%q", op, pw.Namespace, pw.Key)
	default:
		return storage.Result{}, wrapf(err, "%s %q", op, pw.Namespace)
	}
}

// checkNames checks the names a call was given. A closed Store says so
// first, bad input or not.
func (s *Store) checkNames(names ...string) error {
	if s.isClosed() {
		return ErrClosed
	}
	for _, n := range names {
		if n == "" {
			return ErrEmptyName
		}
	}
	return nil
}

// List returns every live key of namespace with its value, read from
// SQLite. The map is never nil.
func (s *Store) List(namespace string) (map[string]string, error) {
	if err := s.checkNames(namespace); err != nil {
		return map[string]string{}, err
	}
	if err := s.enter(); err != nil {
		return map[string]string{}, err
	}
	defer s.inFlight.RUnlock()
	now, err := s.now()
	if err != nil {
		return map[string]string{}, err
	}
	m, err := s.be.List(s.ctx, namespace, now)
	if err != nil {
		return map[string]string{}, wrapf(s.readError(err), "list %q", namespace)
	}
	return m, nil
}

// Backup writes a consistent copy of the store, as of one moment, to a new
// file at path (mode 0600), which [Open] can open like any store file;
// reads and writes go on meanwhile. path must not exist: Backup fails with
// an error matching fs.ErrExist and leaves what is there alone. Nor may it
// be the name of a database's -wal, -shm or -journal file, which SQLite
// would take for that database's own (fs.ErrInvalid). ctx ends
// the copy early; then, as on any failure, no file is left at path.
//
// It is the safe way to copy a file that a Store of this process has open:
// copying the file with the process's own file operations (os.ReadFile, a
// copy with io.Copy) opens and closes it, which drops every lock SQLite
// holds on it for this process (see the package's Caveats). A Store over
// another backend returns [ErrUnsupported]: copy PostgreSQL with its own
// tools (pg_dump).
func (s *Store) Backup(ctx context.Context, path string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inFlight.RUnlock()
	b, ok := s.be.(storage.Backuper)
	if !ok {
		return wrapf(ErrUnsupported, "backup to %s", path)
	}
	if err := s.noteDamage(b.Backup(ctx, path)); err != nil {
		return wrapf(err, "backup to %s", path)
	}
	return nil
}

// Namespace is one namespace and its number of live keys.
type Namespace struct {
	Name string
	Keys int
}

// Namespaces returns every namespace that holds live keys, sorted by name.
func (s *Store) Namespaces() ([]Namespace, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.inFlight.RUnlock()
	now, err := s.now()
	if err != nil {
		return nil, err
	}
	ncs, err := s.be.Namespaces(s.ctx, now)
	if err != nil {
		return nil, wrapf(s.readError(err), "namespaces")
	}
	out := make([]Namespace, len(ncs))
	for i, nc := range ncs {
		out[i] = Namespace{Name: nc.Namespace, Keys: nc.Live}
	}
	return out, nil
}

// CacheStats describes the read cache. [Stats] includes its Entries,
// Bytes and Evictions.
type CacheStats = cache.Stats

// CacheStats returns a snapshot of the read cache's size. [Store.Stats]
// reports the same Entries, Bytes and Evictions beside its other counters.
func (s *Store) CacheStats() CacheStats {
	return s.cache.Stats()
}
