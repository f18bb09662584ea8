package persist

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Commits append pages to the write-ahead log; a checkpoint copies them
// into the database file, and once one has copied the whole log, the next
// write starts the log over from its beginning. SQLite itself checkpoints
// only as a backstop, in the commit that takes the log past 4096 frames
// (wal_autocheckpoint), which makes that write pay for copying the log and
// fsyncing the file. The owner of a DB keeps the log well below that: it
// waits on [DB.CheckpointDue] and calls [DB.Checkpoint], off the write
// path.
//
// A checkpoint that runs beside a stream of commits never copies the whole
// log, as frames arrive while it copies; and the log starts over only
// after a checkpoint that did. So Checkpoint repeats it, each pass copying
// what arrived during the last one, until few frames are left; then it
// copies those while holding Apply off, which completes it.
const (
	// checkpointFrames is how many frames this DB's commits have
	// appended to the log since the last complete checkpoint when
	// CheckpointDue fires: a quarter of the backstop.
	checkpointFrames = 1024
	// The pass that holds writes off begins once no more than heldFrames
	// are left, or the log has lockFrames, or maxPasses passes have run,
	// or a pass left no fewer frames than the one before.
	heldFrames = 128
	lockFrames = 2048
	maxPasses  = 8
	// stopFrames is the length of the log from which writes wait for a
	// checkpoint that is running, rather than take the log to the
	// backstop: the checkpoint is falling behind (as when the goroutine
	// that copies gets too little CPU). For a log that a
	// reader outside this DB kept from being copied, it is that many
	// frames more than the log had when the checkpoint began.
	stopFrames = 3072
	// readerWait bounds how long the pass that holds writes off waits for
	// reads in progress: see drainReadsLocked.
	readerWait = time.Millisecond
)

// Checkpointed is what one [DB.Checkpoint] did.
type Checkpointed struct {
	// Complete reports that the whole log is now in the database file: the
	// next write starts the log over, unless a reader outside this DB
	// still reads from it then.
	Complete bool
	// Passes is how many checkpoint passes ran, the last one with writes
	// held off.
	Passes int
	// Held is how long writes were held off, and HeldFrames how many frames
	// the pass copied meanwhile.
	Held       time.Duration
	HeldFrames int
}

// CheckpointDue returns a channel that receives a value when the commits
// of this DB since the last complete checkpoint have appended a quarter of
// SQLite's backstop to the write-ahead log: the moment to call
// [DB.Checkpoint]. It is the same channel at every call.
func (db *DB) CheckpointDue() <-chan struct{} { return db.due }

// checkpointHold is what Apply waits for while a Checkpoint runs.
type checkpointHold struct {
	// all is set once the last pass waits for wmu or holds it: from then
	// on every Apply waits, so that a stream of writes cannot keep taking
	// wmu ahead of it.
	all     atomic.Bool
	stopAt  int64         // from this many frames logged, every Apply waits
	release chan struct{} // closed when the Checkpoint returns
}

// waitCheckpoint is called by Apply before it takes wmu: it waits for the
// running Checkpoint when that holds writes off, or when the log has grown
// to stopFrames meanwhile.
func (db *DB) waitCheckpoint() {
	if h := db.hold.Load(); h != nil && (h.all.Load() || db.logged.Load() >= h.stopAt) {
		<-h.release
	}
}

// Checkpoint copies the write-ahead log into the database file, on a read
// connection, so that the next write starts the log over. It runs PASSIVE
// checkpoints, which block neither writers nor readers, while they leave
// many frames and fewer each time; then one more while holding off
// [DB.Apply], which, with no commit of this DB beside it, copies the rest.
// A private database ([DB.Private]) has no log: Checkpoint returns at once,
// Complete.
// Writes wait for that pass alone: its few frames, and the fsyncs of the
// log and of the database file that end every checkpoint; so do the reads
// of this DB that begin meanwhile. Before and after the pass, it waits
// briefly (readerWait) for this DB's reads in progress, which could
// otherwise keep frames from being copied or the log from starting over.
// While the passes before it run, writes wait only if the log reaches
// stopFrames.
//
// The checkpoint stays incomplete when a reader outside this DB still
// needs frames of the log, or when another connection checkpoints
// meanwhile; it says so, and the next call continues it. One Checkpoint
// runs at a time; a second call waits for the first. Once another SQLite
// library was found beside this DB ([ErrForeignSQLite]), Checkpoint fails
// with that error and copies nothing: the log may hold pages that library
// overwrote, or be a file it deleted.
func (db *DB) Checkpoint(ctx context.Context) (Checkpointed, error) {
	if db.private {
		return Checkpointed{Complete: true}, nil
	}
	if err := db.guard.refused(); err != nil {
		return Checkpointed{}, err
	}
	db.cmu.Lock()
	defer db.cmu.Unlock()
	var r Checkpointed
	// The connection is taken before Apply is held off: waiting for one
	// of the pool while holding the writer would stall writes behind the
	// readers.
	c, err := db.pool.Conn(ctx)
	if err != nil {
		return r, withSentinel(err)
	}
	defer c.Close()
	h := &checkpointHold{
		stopAt:  max(stopFrames, db.logged.Load()+stopFrames-checkpointFrames),
		release: make(chan struct{}),
	}
	db.hold.Store(h)
	defer func() {
		db.hold.Store(nil)
		close(h.release)
	}()

	// Each pass reports the log's length when it began and how much of it
	// is copied; logged tells how many frames arrived meanwhile.
	var log, done int
	pass := func() (busy bool, err error) {
		r.Passes++
		if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
			return false, withSentinel(err)
		}
		return busy, nil
	}
	for last := -1; ; {
		before := db.logged.Load()
		busy, err := pass()
		if err != nil || busy {
			return r, err // busy: another connection is checkpointing
		}
		if r.Passes == 1 && int64(log) > before {
			// The log did not start over after the last checkpoint (a
			// reader outside this DB held it): count what it holds.
			db.logged.Add(int64(log) - before)
			before = int64(log)
		}
		arrived := int(db.logged.Load() - before)
		left := log - done + arrived
		if left <= heldFrames || log+arrived >= lockFrames || last >= 0 && left >= last || r.Passes == maxPasses {
			break
		}
		last = left
	}

	h.all.Store(true)
	db.wmu.Lock()
	defer db.wmu.Unlock()
	t0 := time.Now()
	prev := done
	// Reads wait too: beside it they would compete for the CPU with this
	// pass, which writes wait for (with reads waiting, writes are held
	// off for less: BenchmarkSustainedWrites, the rows with readers,
	// held-max-µs), and begin transactions that keep the log from
	// starting over.
	gate := make(chan struct{})
	db.readGate.Store(&gate)
	defer func() {
		db.readGate.Store(nil)
		close(gate)
	}()
	db.drainReadsLocked() // so that no reader keeps frames from being copied
	busy, err := pass()
	if err == nil && !busy {
		r.Complete = log == done
		if r.Complete {
			db.drainReadsLocked() // so that the next write starts the log over
		}
		// With no commit of ours beside it, the pass counted exactly what
		// is left, and a signal sent while it ran is out of date.
		db.logged.Store(int64(log - done))
		select {
		case <-db.due:
		default:
		}
	}
	r.Held = time.Since(t0)
	r.HeldFrames = log - prev
	if log < prev {
		r.HeldFrames = log // the log started over since the last pass
	}
	return r, err
}

// loggedLocked adds the frames the write connection has appended to the
// log since the last call to db.logged, and signals CheckpointDue once
// they reach checkpointFrames. SQLite counts them itself (a transaction's
// dirty pages, SQLITE_DBSTATUS_CACHE_WRITE); a transaction that rolled back
// counts too, which only makes the checkpoint come a little early. A
// private database has no log, and a DB over another driver's connections
// ([OpenDB]) has no counters: neither counts anything. The caller holds db.wmu.
func (wc *writeConn) loggedLocked(db *DB) {
	if db.private || wc.status == nil {
		return
	}
	n, _, err := wc.status.Status(sqlite.DBStatusCacheWrite, true)
	if err != nil {
		n = 1 // cannot happen for a valid op; count a frame rather than none
	}
	if db.logged.Add(int64(n)) >= checkpointFrames {
		select {
		case db.due <- struct{}{}:
		default: // already signalled
		}
	}
}

// Readers hold the log too. One whose snapshot predates the last commit
// keeps a checkpoint from copying the frames after it; one that began
// before the checkpoint completed may still read frames of the log, and
// while it does, the next write cannot start the log over: it appends,
// and the log outgrows the checkpoints (measured: with 2 goroutines
// reading without pause, the log of a single writer reached SQLite's
// backstop). So the pass that holds writes off waits, before and after it
// runs, for the reads of this DB in progress (drainReadsLocked); a read
// that begins once the checkpoint is complete reads the database file
// alone and holds nothing.

// beginRead counts a read on the pool as in progress; the caller passes
// the result to endRead once the statement is reset.
//
// In a private database, it takes db.wmu until endRead: reads and writes
// take turns. memdb locks as a rollback journal does, only more strictly
// (a reader cannot begin while a writer holds even the RESERVED lock), so
// a read beside a write would fail with SQLITE_BUSY or poll for it in the
// busy handler, losing to a stream of commits; a Go mutex instead queues
// them fairly, and nothing in the database can be busy. No read may begin
// while its goroutine holds db.wmu.
func (db *DB) beginRead() uint64 {
	if db.private {
		db.wmu.Lock()
		return 0
	}
	if g := db.readGate.Load(); g != nil {
		<-*g
	}
	e := db.readEpoch.Load() & 1
	db.reading[e].Add(1)
	return e
}

func (db *DB) endRead(e uint64) {
	if db.private {
		db.wmu.Unlock()
		return
	}
	db.reading[e].Add(-1)
}

// drainReadsLocked starts a new read epoch and waits, up to readerWait,
// for the reads of the last one to finish. The caller holds db.wmu and
// has closed db.readGate, so new reads wait. A read that took the old
// epoch but counted itself too late to be seen begins its transaction
// after the switch, with writes held off: it sees the whole log, and keeps
// no frame from being copied; the drain after the pass waits for it.
func (db *DB) drainReadsLocked() {
	old := (db.readEpoch.Add(1) - 1) & 1
	deadline := time.Now().Add(readerWait)
	for db.reading[old].Load() > 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
}
