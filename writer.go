package opstate

import (
	"context"
	"fmt"
	"sync"

	"github.com/d8da9184/opstate/cache"
	"github.com/d8da9184/opstate/persist"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

type writeKind uint8

const (
	writePut writeKind = iota
	writeDelete
	writeDeleteNamespace
	writeSweep
)

// write is one request to the writer.
type write struct {
	kind      writeKind
	ns, key   string
	value     string
	expiresAt int64 // Unix nanoseconds; 0 = never
	limit     int   // rows per sweep batch

	// Results, written by the leader that commits the write before it
	// sends on next.
	swept []persist.Key
	err   error

	// next receives false once the write is done, or true when its
	// goroutine is handed the lead of the next batch.
	next chan bool
}

// writer runs every write through one connection, and lets writes that
// arrive together share a transaction (group commit). There is no writer
// goroutine: the caller that finds nobody committing becomes the leader,
// commits everything queued, and hands the lead to the oldest waiter, so a
// lone writer pays for no goroutine switch.
//
// Because one leader at a time commits and then applies the batch to the
// cache, in commit order, the cache sees writes to a key in the order SQLite
// committed them: two racing Sets cannot leave the cache and SQLite holding
// different values.
type writer struct {
	db    *persist.DB
	cache *cache.Cache
	now   func() int64

	mu      sync.Mutex // guards queue and leading
	queue   []*write
	leading bool // a goroutine is committing; it will serve the queue
}

// do performs w and returns its error once it is committed (and applied to
// the cache) or has failed.
func (wr *writer) do(w *write) error {
	w.next = make(chan bool, 1)
	wr.mu.Lock()
	wr.queue = append(wr.queue, w)
	if wr.leading {
		wr.mu.Unlock()
		if lead := <-w.next; !lead {
			return w.err
		}
		wr.mu.Lock()
	}
	// We lead. Our write is at the head of the queue: either the queue was
	// empty when we arrived, or the lead was handed to the oldest waiter.
	wr.leading = true
	n := min(len(wr.queue), maxBatch)
	batch := make([]*write, n)
	copy(batch, wr.queue)
	wr.queue = wr.queue[:copy(wr.queue, wr.queue[n:])]
	wr.mu.Unlock()

	wr.commit(batch)
	for _, o := range batch[1:] {
		o.next <- false
	}

	wr.mu.Lock()
	if len(wr.queue) > 0 {
		wr.queue[0].next <- true
	} else {
		wr.leading = false
	}
	wr.mu.Unlock()
	return w.err
}

// commit runs batch in one transaction and applies it to the cache. If
// anything fails, every write of the batch fails with the same error, and
// the keys it touched are dropped from the cache, so that the next read
// comes from SQLite, which still holds the old values.
func (wr *writer) commit(batch []*write) {
	ctx := context.Background()
	now := wr.now()
	tx, err := wr.db.Begin(ctx)
	if err == nil {
		for _, w := range batch {
			if err = wr.exec(tx, w, now); err != nil {
				break
			}
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	for _, w := range batch {
		w.err = err
		if err != nil {
			w.swept = nil
			wr.invalidate(w)
		} else {
			wr.apply(w)
		}
	}
}

func (wr *writer) exec(tx *persist.Tx, w *write, now int64) error {
	switch w.kind {
	case writePut:
		return tx.Put(w.ns, w.key, w.value, now, w.expiresAt)
	case writeDelete:
		return tx.Delete(w.ns, w.key)
	case writeDeleteNamespace:
		return tx.DeleteNamespace(w.ns)
	case writeSweep:
		var err error
		w.swept, err = tx.DeleteExpired(now, w.limit)
		return err
	}
	return fmt.Errorf("opstate: unknown write kind %d", w.kind)
}

// apply records a committed write in the cache.
func (wr *writer) apply(w *write) {
	switch w.kind {
	case writePut:
		wr.cache.Put(w.ns, w.key, cache.Entry{Value: w.value, ExpiresAt: w.expiresAt})
	case writeDelete:
		wr.cache.Put(w.ns, w.key, cache.Entry{Absent: true})
	case writeDeleteNamespace:
		wr.cache.RemoveNamespace(w.ns)
	case writeSweep:
		for _, k := range w.swept {
			wr.cache.Remove(k.Namespace, k.Key)
		}
	}
}

// invalidate drops what a failed write might have touched.
func (wr *writer) invalidate(w *write) {
	switch w.kind {
	case writePut, writeDelete:
		wr.cache.Remove(w.ns, w.key)
	case writeDeleteNamespace:
		wr.cache.RemoveNamespace(w.ns)
	}
}
