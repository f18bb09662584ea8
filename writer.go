package opstate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d8da9184/opstate/cache"
	"github.com/d8da9184/opstate/persist"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// write is one request to the writer.
type write struct {
	persist.Write

	// err is written by the leader that commits the write, before it
	// sends on next.
	err error

	// next receives false once the write is done, or true when its
	// goroutine is handed the lead. It is nil for a write whose caller led
	// from the start: nobody else ever signals it.
	next chan bool

	// pending is the cache's record of the write while it commits; set and
	// ended by the leader.
	pending cache.Pending
}

// writer runs every write through one connection, and lets writes that
// arrive together share a transaction (group commit). There is no writer
// goroutine: the caller that finds nobody committing becomes the leader and
// commits everything queued, batch after batch, until the queue is empty or
// its own write is done and it has served a few batches more; then it hands
// the lead to the oldest waiter. A lone writer thus pays for no goroutine
// switch, and under load the leader keeps the database busy instead of
// waiting for a woken goroutine to be scheduled.
//
// Because one leader at a time commits and then applies the batch to the
// cache, in commit order, the cache sees writes to a key in the order SQLite
// committed them: two racing Sets cannot leave the cache and SQLite holding
// different values.
type writer struct {
	db    *persist.DB
	cache *cache.Cache
	now   func() (int64, error) // Unix milliseconds, or the panic of Options.Clock

	mu      sync.Mutex // guards queue and leading
	queue   []*write
	leading bool // a goroutine is committing; it will serve the queue
	// lastBatch is the size of the last batch; read and written by the
	// leader under mu.
	lastBatch int

	batch []*persist.Write // the leader's scratch slice

	// others counts committed or failed writes that are not sweeps; the
	// sweep reads it to tell whether anyone else is writing.
	others atomic.Uint64

	batches, writes atomic.Uint64 // transactions committed or failed, and their writes

	// damage is the first error by which SQLite reported the file damaged;
	// once set, no transaction is begun (damage.go).
	damage atomic.Pointer[error]

	afterApply func() // test hook: runs between a commit and its cache update
}

// extraBatches is how many batches of others' writes a leader commits after
// its own before handing the lead on.
const extraBatches = 4

// maxGather bounds how long a leader waits for the writers of its last
// batch to queue their next writes.
const maxGather = 50 * time.Microsecond

// do performs w and returns its error once it is committed (and applied to
// the cache) or has failed.
func (wr *writer) do(w *write) error {
	wr.mu.Lock()
	wr.queue = append(wr.queue, w)
	if wr.leading {
		// Only a write that waits needs a channel; the leader reads next
		// after taking the queue under mu, so it sees it set.
		w.next = make(chan bool, 1)
		wr.mu.Unlock()
		if lead := <-w.next; !lead {
			return w.err
		}
		wr.mu.Lock()
	}
	// We lead; our write is in the queue, which is served in order.
	wr.leading = true
	for done, extra := false, 0; ; {
		// Writers are arriving together: the ones just woken will queue
		// their next writes in a moment. Yield until as many are queued
		// as shared the last batch, for maxGather at most, so that they
		// share the next transaction instead of each paying for its own.
		if wr.lastBatch > 1 && len(wr.queue) < wr.lastBatch {
			deadline := time.Now().Add(maxGather)
			for len(wr.queue) < wr.lastBatch && time.Now().Before(deadline) {
				wr.mu.Unlock()
				runtime.Gosched()
				wr.mu.Lock()
			}
		}
		n := batchLen(wr.queue)
		wr.lastBatch = n
		batch := make([]*write, n)
		copy(batch, wr.queue)
		wr.queue = wr.queue[:copy(wr.queue, wr.queue[n:])]
		wr.mu.Unlock()

		wr.commit(batch)
		for _, o := range batch {
			if o == w {
				done = true
			} else {
				o.next <- false
			}
		}

		wr.mu.Lock()
		switch {
		case len(wr.queue) == 0:
			wr.leading = false
			wr.mu.Unlock()
			return w.err
		case done && extra == extraBatches:
			wr.queue[0].next <- true
			wr.mu.Unlock()
			return w.err
		case done:
			extra++
		}
	}
}

// commit runs batch in one transaction and records it in the cache. Before
// the commit, the keys the batch writes are marked pending in the cache:
// dropped, and refused to fills, so that until the batch's outcome is
// known every read of them goes to SQLite, which alone knows when the
// commit took effect (serving the old value from memory after another read
// saw the new one in SQLite would break linearizability). After it, they
// take their new values, or, if anything failed, stay uncached, so that the
// next read comes from SQLite. A batch that failed is retried write by
// write, unless another connection's lock made it fail, so that a write
// fails only for its own sake.
func (wr *writer) commit(batch []*write) {
	ws := wr.batch[:0]
	for _, w := range batch {
		ws = append(ws, &w.Write)
		switch w.Kind {
		case persist.Put, persist.Delete:
			w.pending = wr.cache.Begin(w.Namespace, w.Key)
		case persist.DeleteNamespace:
			w.pending = wr.cache.BeginNamespace(w.Namespace)
		}
	}
	err := wr.refuseDamaged()
	if err == nil {
		err = wr.noteDamage(wr.apply(ws))
	}
	for _, w := range batch {
		w.err = err
	}
	// A batch can fail for one write's sake (a value SQLite refuses, a
	// trigger an operator added): then each write runs alone, and fails
	// alone. Not for a lock held elsewhere, which would fail them all
	// again, each after the full busy timeout, and not for damage, which
	// the writes on sound pages would then be written around.
	retried := err != nil && len(batch) > 1 && !errors.Is(err, persist.ErrBusy) && !errors.Is(err, persist.ErrCorrupt)
	if retried {
		err = nil
		for i, w := range batch {
			if w.err = wr.refuseDamaged(); w.err == nil {
				w.err = wr.noteDamage(wr.apply(ws[i : i+1]))
			}
		}
	}
	if wr.afterApply != nil {
		wr.afterApply()
	}
	if batch[0].Kind != persist.DeleteExpired {
		wr.others.Add(uint64(len(batch)))
	}
	wr.batches.Add(1)
	wr.writes.Add(uint64(len(ws)))
	clear(ws)
	wr.batch = ws

	last := lastWrites(batch)
	for i, w := range batch {
		switch w.Kind {
		case persist.Put, persist.Delete:
			// After a retry, which write of a key SQLite holds depends on
			// which succeeded: the keys stay uncached.
			var e *cache.Entry
			if w.err == nil && !retried && (last == nil || last[w.key()] == i) {
				e = &cache.Entry{Value: w.Value, ExpiresAt: w.ExpiresAt, Absent: w.Kind == persist.Delete}
			}
			wr.cache.End(w.pending, e)
		case persist.DeleteNamespace:
			wr.cache.End(w.pending, nil)
		case persist.DeleteExpired:
			if w.err == nil {
				// The rows were expired, so invisible already: dropping
				// them from the cache only frees memory.
				for _, k := range w.Swept {
					wr.cache.Remove(k.Namespace, k.Key)
				}
			}
		}
	}
}

// apply commits ws. A panic in Options.Clock or in the driver becomes an
// error that names it, so that the batch fails and every writer waiting on
// it is answered.
func (wr *writer) apply(ws []*persist.Write) (err error) {
	now, err := wr.now()
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opstate: SQLite driver panicked: %v", r)
		}
	}()
	return wr.db.Apply(context.Background(), now, ws)
}

func (w *write) key() persist.Key { return persist.Key{Namespace: w.Namespace, Key: w.Key} }

// lastWrites maps each key a batch of several writes puts or deletes to the
// index of the write that decides what the cache holds after the batch: its
// last write, unless a later DeleteNamespace of its namespace overrides it
// (then -1). It returns nil for a batch of one.
func lastWrites(batch []*write) map[persist.Key]int {
	if len(batch) < 2 {
		return nil
	}
	last := make(map[persist.Key]int, len(batch))
	for i, w := range batch {
		switch w.Kind {
		case persist.Put, persist.Delete:
			last[w.key()] = i
		case persist.DeleteNamespace:
			for k := range last {
				if k.Namespace == w.Namespace {
					last[k] = -1
				}
			}
		}
	}
	return last
}

// batchLen returns how many writes from the head of queue share the next
// transaction: up to maxBatch, and never a sweep together with other
// writes, so that a write never waits for a sweep batch it did not queue
// behind.
func batchLen(queue []*write) int {
	if len(queue) > 0 && queue[0].Kind == persist.DeleteExpired {
		return 1
	}
	n := 0
	for n < len(queue) && n < maxBatch && queue[n].Kind != persist.DeleteExpired {
		n++
	}
	return n
}
