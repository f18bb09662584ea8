package persist

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// A second copy of SQLite in the process — github.com/mattn/go-sqlite3,
// which links SQLite's C library, is the common one — cannot share a file
// with this package's: each copy keeps its own record of the locks the
// process holds, and POSIX locks of one process never conflict, so neither
// copy sees the other's. The other copy, opening the -shm, takes itself for
// the first user of the WAL index and truncates it under ours; its writers
// and ours both take the log's write lock; closing its descriptors drops
// every POSIX lock ours holds; and, where ours holds POSIX locks on the
// database file too (ofd.go), its last connection, finding the file
// "unlocked", checkpoints and deletes the -wal and -shm while ours goes on
// appending to the deleted log. Acknowledged writes are lost and the file
// is corrupted. Nothing can make two copies safe; what can be done is to
// notice and stop writing.
//
// What gives another copy away, on Linux, where /proc/self/fd shows every
// descriptor of the process (sidecars, foreign_linux.go):
//
//   - SQLite opens the -shm once per process and file, shared by all its
//     connections, and holds a read lock on byte 128 through that
//     descriptor for as long as it uses it. A second descriptor of the
//     -shm is another copy's (or code that opened it to read it, which is
//     as bad: its close drops the locks). Another copy's open also moves
//     that lock to its own descriptor, and its close drops it: a
//     descriptor of ours without the lock is a sign that outlives the
//     other copy's connections.
//   - The -wal and -shm at the database's path must stay the files that
//     this package's connections have open: if they were deleted or
//     replaced, the writes go to files nobody will read.
//
// The database file and the -wal are opened once per connection by every
// copy, so counting their descriptors tells nothing: the application's own
// connections through modernc.org/sqlite, which are safe, look the same
// as another library's.
//
// Open checks everything, before a migration writes to the file and again
// before it returns, and refuses the file if it finds another copy. Every
// commit is followed by the check of the lock, one read of procfs, and,
// where the database file has POSIX locks, by the stats of the -wal and
// -shm: a transaction that committed after another copy opened the file,
// or into a deleted log, fails instead of being acknowledged. While the
// DB is open, a goroutine repeats the checks: the cheap ones (three stats
// and the read) every checkEvery while the DB writes, and the count of
// descriptors, whose cost grows with the number the process has open, as
// often as keeps it to a share of one core (fullShare). A DB that has not
// written for dormantAfter checks stops checking; its next write runs the
// cheap checks itself before it begins, and wakes the goroutine. Once a
// check finds another copy, every write fails with ErrForeignSQLite;
// reads go on. A write that fails with damage of the kind another copy
// causes runs every check at once (explain), so that its error names the
// cause even where the damage came before any check saw the copy.
const (
	checkEvery   = 10 * time.Millisecond
	fullShare    = 200 // the count of descriptors runs at most once per fullShare times its cost
	dormantAfter = 20
)

// guard watches a DB's files for another SQLite library. Its methods are
// safe to call on a nil *guard, which watches nothing (a private database).
type guard struct {
	sc *sidecars // what is watched; nil where nothing can be (no /proc)
	// posixLocks is set when SQLite's locks on the database file are
	// POSIX locks (ofd.go): another process that finds them dropped can
	// delete the log under the DB, which afterCommit then checks for.
	posixLocks bool

	// found is the first finding, as the error every write returns from
	// then on; set once.
	found atomic.Pointer[error]

	mu       sync.Mutex // serializes checks; guards lastFull and fullCost
	lastFull time.Time
	fullCost time.Duration

	// wrote is set by every write and cleared by each check of the
	// goroutine; dormant is set while the goroutine waits for kick. A
	// write stores wrote before it loads dormant, and the goroutine stores
	// dormant before it loads wrote, so that one of them sees the other.
	wrote, dormant atomic.Bool
	kick           chan struct{} // capacity 1
	stop, done     chan struct{}
}

// foreignError is what a check found, with ErrForeignSQLite.
type foreignError struct{ finding string }

func (e *foreignError) Error() string {
	return "opstate: " + e.finding + ": " + strings.TrimPrefix(ErrForeignSQLite.Error(), "opstate: ")
}

func (e *foreignError) Unwrap() error { return ErrForeignSQLite }

// startGuard checks the database at path, whose connections are open, for
// another SQLite library, and returns a guard that goes on watching it, or
// an error matching ErrForeignSQLite.
func startGuard(path string) (*guard, error) {
	start := time.Now()
	sc, finding := openSidecars(path)
	if finding != "" {
		return nil, &foreignError{finding}
	}
	g := &guard{sc: sc, posixLocks: !sqlite.OFDLockingEnabled()}
	if sc == nil {
		return g, nil
	}
	g.lastFull = time.Now()
	g.fullCost = g.lastFull.Sub(start)
	g.kick = make(chan struct{}, 1)
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.run()
	return g, nil
}

// precheck checks the database at path for another SQLite library, as
// startGuard does, and returns what it finds as an error, without going on
// watching.
func precheck(path string) error {
	sc, finding := openSidecars(path)
	if sc != nil {
		sc.close()
	}
	if finding != "" {
		return &foreignError{finding}
	}
	return nil
}

// close stops the goroutine and waits for it.
func (g *guard) close() {
	if g == nil || g.sc == nil {
		return
	}
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
	g.sc.close()
}

// beforeWrite returns the error a write fails with once another library
// was found. When the goroutine has stopped checking, it runs the cheap
// checks itself first, and wakes the goroutine.
func (g *guard) beforeWrite() error {
	if g == nil {
		return nil
	}
	if p := g.found.Load(); p != nil {
		return *p
	}
	if g.sc == nil {
		return nil
	}
	if !g.wrote.Load() {
		g.wrote.Store(true)
	}
	if !g.dormant.Load() {
		return nil
	}
	err := g.check(false)
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return err
}

// refused returns the error with which writes fail, or nil.
func (g *guard) refused() error {
	if g == nil {
		return nil
	}
	if p := g.found.Load(); p != nil {
		return *p
	}
	return nil
}

// run checks every checkEvery while the DB writes, until close or a
// finding.
func (g *guard) run() {
	defer close(g.done)
	t := time.NewTimer(checkEvery)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		case <-g.kick: // a write woke a dormant goroutine, or one that was about to sleep
		}
		if g.check(true) != nil {
			return
		}
		if g.wrote.Swap(false) {
			idle = 0
		} else {
			idle++
		}
		wait := checkEvery
		if idle >= dormantAfter {
			g.dormant.Store(true)
			if !g.wrote.Load() {
				select {
				case <-g.stop:
					return
				case <-g.kick:
				}
			}
			g.dormant.Store(false)
			idle, wait = 0, 0 // check at once: the DB writes again
		}
		t.Reset(wait)
	}
}

// afterCommit returns the error of a finding made while a transaction
// committed, or made by the checks it runs then: that SQLite's lock on the
// -shm is still in place, and, where the database file's locks are POSIX
// locks (which a close of any descriptor of the file drops), that the -wal
// and -shm at the path are still the ones SQLite writes to. Another
// library that opened the file before the commit ended, or a process that
// deleted the log, may lose the transaction: it is not acknowledged.
func (g *guard) afterCommit() error {
	if g == nil || g.sc == nil {
		return nil
	}
	f := g.sc.lockCheck()
	if f == "" && g.posixLocks {
		f = g.sc.pathCheck()
	}
	if f != "" {
		return g.record(f)
	}
	return g.refused()
}

// record keeps the first finding, and returns the error it makes.
func (g *guard) record(finding string) error {
	var err error = &foreignError{finding}
	if !g.found.CompareAndSwap(nil, &err) {
		return *g.found.Load()
	}
	return err
}

// explain returns err, the error of a failed write, joined to the finding
// of another SQLite library when err is damage such a library causes (a
// malformed file, an I/O error, a file that reads as no database) and a
// check run at once, in full, finds one; otherwise err. Another library's
// first open can damage what the DB reads before any check saw it, and
// the Store stops writing on the damage: without this, the message would
// name the damage and not its cause. It runs only on those errors.
func (g *guard) explain(err error) error {
	if g == nil || g.sc == nil || errors.Is(err, ErrForeignSQLite) ||
		!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIO) && !errors.Is(err, ErrNotDatabase) {
		return err
	}
	found := g.checkNow()
	if found == nil {
		return err
	}
	return fmt.Errorf("%w; the write failed with: %w", found, err)
}

// checkNow runs every check, the count of descriptors whether due or not,
// and records and returns what it finds.
func (g *guard) checkNow() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.found.Load(); p != nil {
		return *p
	}
	finding := g.sc.quick()
	if finding == "" {
		finding = g.sc.full()
	}
	if finding == "" {
		return nil
	}
	return g.record(finding)
}

// check runs the cheap checks and, if full and it is due, the count of
// descriptors; it records and returns what it finds.
func (g *guard) check(full bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.found.Load(); p != nil {
		return *p
	}
	finding := g.sc.quick()
	if finding == "" && full && time.Since(g.lastFull) >= max(checkEvery, fullShare*g.fullCost) {
		start := time.Now()
		finding = g.sc.full()
		g.lastFull = time.Now()
		g.fullCost = g.lastFull.Sub(start)
	}
	if finding == "" {
		return nil
	}
	return g.record(finding)
}
