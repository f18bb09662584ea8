package opstate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d8da9184/opstate/internal/cache"
	"github.com/d8da9184/opstate/storage"
)

// maxBatch bounds how many requests share one transaction.
const maxBatch = 256

// request is one write waiting in the committer's queue.
type request struct {
	storage.Write

	// err, and res when err is nil, are written by the leader that
	// commits the request, before it sends on next.
	err error
	res storage.Result

	// next receives false once the request is done, or true when its
	// goroutine is handed the lead. It is nil for a request whose caller
	// led from the start: nobody else ever signals it.
	next chan bool

	// pending is the cache's record of the write while it commits; set and
	// ended by the leader.
	pending cache.Pending
}

// committer runs every write through one connection, and lets writes that
// arrive together share a transaction (group commit). There is no
// committing goroutine: the caller that finds nobody committing becomes the
// leader and commits everything queued, batch after batch, until the queue
// is empty or its own request is done and it has served a few batches more;
// then it hands the lead to the oldest waiter. A lone writer thus pays for
// no goroutine switch, and under load the leader keeps the database busy
// instead of waiting for a woken goroutine to be scheduled.
//
// Because one leader at a time commits and then applies the batch to the
// cache, in commit order, the cache sees writes to a key in the order SQLite
// committed them: two racing Sets cannot leave the cache and SQLite holding
// different values.
type committer struct {
	be storage.Backend
	// ctx is the Store's lifetime, given to every Apply: Close ends a
	// batch's wait for another connection's lock (see apply).
	ctx   context.Context
	cache *cache.Cache
	now   func() (int64, error) // Unix milliseconds, or the panic of Options.Clock
	feed  *feed                 // where the changes of every batch are sent

	mu      sync.Mutex // guards queue, leading and lastSize
	queue   []*request
	leading bool // a goroutine is committing; it will serve the queue
	// lastSize is how many requests the last batch held.
	lastSize int

	scratch []storage.Write // the leader's, for the writes of a batch

	batches, writes atomic.Uint64 // transactions committed or failed, and their writes
	writeErrors     atomic.Uint64 // of writes, those that failed; added to before their callers are answered

	// damage is the first error by which SQLite reported the file damaged;
	// once set, no transaction is begun (damage.go).
	damage atomic.Pointer[error]

	afterApply func() // test hook: runs between a commit and its cache update
}

// extraBatches is how many batches of others' requests a leader commits
// after its own before handing the lead on.
const extraBatches = 4

// maxGather bounds how long a leader waits for the writers of its last
// batch to queue their next requests.
const maxGather = 50 * time.Microsecond

// do commits r and returns its error once it is committed (and applied to
// the cache) or has failed.
func (cm *committer) do(r *request) error {
	cm.mu.Lock()
	cm.queue = append(cm.queue, r)
	if cm.leading {
		// Only a request that waits needs a channel; the leader reads next
		// after taking the queue under mu, so it sees it set.
		r.next = make(chan bool, 1)
		cm.mu.Unlock()
		if lead := <-r.next; !lead {
			return r.err
		}
		cm.mu.Lock()
	}
	// We lead; our request is in the queue, which is served in order.
	cm.leading = true
	for done, extra := false, 0; ; {
		// Writers are arriving together: the ones just woken will queue
		// their next requests in a moment. Yield until as many are queued
		// as shared the last batch, for maxGather at most, so that they
		// share the next transaction instead of each paying for its own.
		if cm.lastSize > 1 && len(cm.queue) < cm.lastSize {
			deadline := time.Now().Add(maxGather)
			for len(cm.queue) < cm.lastSize && time.Now().Before(deadline) {
				cm.mu.Unlock()
				runtime.Gosched()
				cm.mu.Lock()
			}
		}
		n := min(len(cm.queue), maxBatch)
		cm.lastSize = n
		batch := make([]*request, n)
		copy(batch, cm.queue)
		cm.queue = cm.queue[:copy(cm.queue, cm.queue[n:])]
		cm.mu.Unlock()

		cm.commit(batch)
		for _, o := range batch {
			if o == r {
				done = true
			} else {
				o.next <- false
			}
		}

		cm.mu.Lock()
		switch {
		case len(cm.queue) == 0:
			cm.leading = false
			cm.mu.Unlock()
			return r.err
		case done && extra == extraBatches:
			cm.queue[0].next <- true
			cm.mu.Unlock()
			return r.err
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
// next read comes from SQLite. A batch that failed is retried request by
// request, unless another connection's lock or damage made it fail, so
// that a write fails only for its own sake.
//
// servedOrder (order.go) is held from before the commit until the batch's
// changes are sent to watchers, so that a change another connection made,
// which is read and sent under it too, is sent either before this batch
// committed or after its changes were sent: the changes of one key reach
// watchers in commit order. It runs inside Store.using (Store.write), as
// the lock's rule asks.
func (cm *committer) commit(batch []*request) {
	cm.feed.order.lock()
	defer cm.feed.order.unlock()
	ws := cm.scratch[:0]
	for _, r := range batch {
		ws = append(ws, r.Write)
		if r.Kind == storage.DeleteNamespace {
			r.pending = cm.cache.BeginNamespace(r.Namespace)
		} else {
			r.pending = cm.cache.Begin(r.Namespace, r.Key)
		}
	}
	err := cm.refuseDamaged()
	var res []storage.Result
	if err == nil {
		res, err = cm.apply(ws)
		err = cm.noteDamage(err)
	}
	for i, r := range batch {
		r.err = err
		if err == nil {
			r.res = res[i]
		}
	}
	// A batch can fail for one write's sake (a value SQLite refuses, a
	// trigger an operator added): then each write runs alone, and fails
	// alone. Not for a lock held elsewhere, which would fail them all
	// again, each after the full busy timeout, not for damage, which
	// the writes on sound pages would then be written around, and not
	// once Close has begun.
	retried := err != nil && len(batch) > 1 && !errors.Is(err, storage.ErrBusy) && !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, ErrClosed)
	if retried {
		for i, r := range batch {
			if r.err = cm.refuseDamaged(); r.err == nil {
				res, err := cm.apply(ws[i : i+1])
				if r.err = cm.noteDamage(err); r.err == nil {
					r.res = res[0]
				}
			}
		}
	}
	if cm.afterApply != nil {
		cm.afterApply()
	}
	cm.batches.Add(1)
	cm.writes.Add(uint64(len(ws)))
	clear(ws)
	cm.scratch = ws

	last := lastWrites(batch)
	for i, r := range batch {
		if r.err != nil {
			cm.writeErrors.Add(1)
		}
		if r.Kind == storage.DeleteNamespace {
			cm.cache.End(r.pending, nil)
			continue
		}
		// After a retry, which write of a key SQLite holds depends on
		// which succeeded: the keys stay uncached.
		if r.err == nil && !retried && (last == nil || last[r.key()] == i) {
			e := r.entry()
			cm.cache.End(r.pending, &e)
		} else {
			cm.cache.End(r.pending, nil)
		}
	}
	if cm.feed.active() {
		for _, r := range batch {
			if ev, ok := r.event(); ok && r.err == nil {
				cm.feed.sendLocked(ev)
			}
		}
	}
}

// entry returns what the key of r, a committed write of one key, holds
// after it.
func (r *request) entry() cache.Entry {
	switch {
	case r.Kind == storage.Put || r.res.Changed && (r.Kind == storage.PutIfAbsent || r.Kind == storage.Swap):
		return cache.Entry{Value: r.Value, ExpiresAt: r.ExpiresAt}
	case r.Kind == storage.Delete || r.res.Changed && r.Kind == storage.DeleteIf:
		return cache.Entry{Absent: true}
	case r.res.Found: // a conditional write that changed nothing: what it found
		return cache.Entry{Value: r.res.Held.Value, ExpiresAt: r.res.Held.ExpiresAt}
	default:
		return cache.Entry{Absent: true}
	}
}

// event returns the change r, a committed write, made, if any.
func (r *request) event() (Event, bool) {
	switch {
	case r.Kind == storage.DeleteNamespace:
		return Event{Namespace: r.Namespace, Op: OpReset}, true
	case !r.res.Changed:
		return Event{}, false
	case r.Kind == storage.Delete || r.Kind == storage.DeleteIf:
		return Event{Namespace: r.Namespace, Key: r.Key, Op: OpDelete}, true
	default:
		return Event{Namespace: r.Namespace, Key: r.Key, Op: OpSet, Value: r.Value}, true
	}
}

// errClosedWaiting is the error of a batch that Close cut short, while it
// waited for another connection's lock or before it began: nothing of it
// was applied.
var errClosedWaiting = fmt.Errorf("%w before the write could commit; it was not applied", ErrClosed)

// apply commits ws and returns what each write did. A panic in Options.Clock or in the driver becomes an
// error that names it, so that the batch fails and every writer waiting on
// it is answered.
//
// The backend is given the Store's context, which Close ends: a batch
// that waits for a lock another connection holds then fails at once,
// without being applied, as does one that has not begun; the backend
// says so with the context's error ([storage.Backend]'s Apply), reported
// as ErrClosed. A batch that the backend was already committing
// completes, and Close waits for it.
func (cm *committer) apply(ws []storage.Write) (res []storage.Result, err error) {
	now, err := cm.now()
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("opstate: storage driver panicked: %v", r)
		}
	}()
	res, err = cm.be.Apply(cm.ctx, now, ws)
	switch {
	case err != nil && cm.ctx.Err() != nil && errors.Is(err, cm.ctx.Err()):
		return nil, errClosedWaiting
	case err != nil:
		return nil, err
	case len(res) != len(ws):
		return nil, fmt.Errorf("opstate: storage returned %d results for %d writes", len(res), len(ws))
	}
	return res, nil
}

func (r *request) key() storage.Key { return storage.Key{Namespace: r.Namespace, Key: r.Key} }

// lastWrites maps each key a batch of several requests writes to
// the index of the request that decides what the cache holds after the
// batch: its last write, unless a later DeleteNamespace of its namespace
// overrides it (then -1). It returns nil for a batch of one.
func lastWrites(batch []*request) map[storage.Key]int {
	if len(batch) < 2 {
		return nil
	}
	last := make(map[storage.Key]int, len(batch))
	for i, r := range batch {
		if r.Kind != storage.DeleteNamespace {
			last[r.key()] = i
			continue
		}
		for k := range last {
			if k.Namespace == r.Namespace {
				last[k] = -1
			}
		}
	}
	return last
}
