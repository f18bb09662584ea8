package opstate

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
)

// Op says what an [Event] reports.
type Op int

const (
	// OpSet: the key was set to Event.Value (Set, SetWithTTL, SetIfAbsent,
	// CompareAndSwap, or anyone else's write).
	OpSet Op = iota + 1
	// OpDelete: the key was deleted (Delete, CompareAndDelete, or anyone
	// else's delete).
	OpDelete
	// OpExpire: the key expired and a sweep deleted its row, or another
	// connection's write left it expired.
	OpExpire
	// OpReset: anything in the namespace may have changed (DeleteNamespace,
	// or events were lost); re-read it with [Store.List]. Event.Key is "".
	OpReset
	// OpStale: the Store has stopped seeing others' writes as it promises,
	// because the change stream of its backend (PostgreSQL's LISTEN) is
	// down: until the OpReset that follows once it is back, others'
	// changes are not sent, and reads bypass the cache (or, with
	// Options.ServeStaleOnOutage, may be stale). [Store.Stale] tells the
	// same. Event.Key is "". A Store on SQLite never sends it.
	OpStale
)

// String returns the name of op: "set", "delete", "expire", "reset" or
// "stale".
func (op Op) String() string {
	switch op {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpReset:
		return "reset"
	case OpStale:
		return "stale"
	}
	return "Op(" + strconv.Itoa(int(op)) + ")"
}

// Event is one change to a namespace, sent by [Store.Watch].
type Event struct {
	Namespace string
	Key       string // "" for OpReset and OpStale
	Op        Op
	Value     string // the value set, for OpSet
}

// MaxPendingEvents is how many keys' events a watcher holds for a consumer
// that does not keep up. Past it, they are replaced by one OpReset. It
// bounds the memory of a watcher: see [Store.Watch].
const MaxPendingEvents = 4096

// Watch returns a channel of the changes to namespace committed after
// Watch returns: by this Store at once, by anyone else writing the file
// (other Stores and processes, the opstate command, plain SQL) within
// SyncInterval. An event is sent only once this Store's reads serve the
// change it reports: a Get on receiving it returns that value or a newer
// one.
//
// Events of one key arrive in commit order. A consumer that falls behind
// never slows writers, readers or other watchers: the events waiting for it
// are coalesced per key, the latest winning, and when more than
// [MaxPendingEvents] keys wait, they are replaced by one OpReset, after
// which the consumer re-reads the namespace with [Store.List]. No event is
// dropped without an OpReset in its place.
//
// The events waiting for a consumer are held outside [Options.CacheBytes].
// A watcher holds at most MaxPendingEvents of them, in a slot and an index
// entry of about 100 bytes each on a 64-bit system: under 400 KB a
// watcher, however far behind its consumer is and for as long as it
// stays there, and about 4 KB (its goroutine and channels) once the
// consumer has received them. Keys and values are not copied: a watcher
// keeps alive the latest value of each key it holds an event for, at
// most MaxPendingEvents values and one more being sent, which the cache
// and the other watchers of the namespace share rather than copy, so a
// thousand stalled watchers of one namespace hold each value once. They
// are not bounded in bytes: what a consumer that got an OpReset instead
// must re-read with [Store.List] is at least as large. Cancel the ctx of
// a watch whose channel is no longer read.
//
// Others' changes are read from the file's change log: each key another
// connection changed arrives as the key's state when this Store read it
// (OpSet with its value, OpDelete, or OpExpire when the row is gone by a
// sweep that found it expired by SQLite's clock, or is there but
// expired); several changes of a key between two checks arrive as one.
// Another connection's change of more than 64 keys of the namespace in one
// check (its DeleteNamespace, say) arrives as an OpReset; of fewer, key by
// key. This Store's DeleteNamespace always sends an OpReset. A Store
// opened with a negative SyncInterval sends only its own changes.
//
// The channel is closed when ctx ends or the Store is closed. Watch
// returns [ErrClosed] after Close, [ErrEmptyName] for an empty namespace,
// and ctx's error if ctx has ended already.
func (s *Store) Watch(ctx context.Context, namespace string) (<-chan Event, error) {
	if err := s.checkNames(namespace); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{ns: namespace, ch: make(chan Event), wake: make(chan struct{}, 1), resets: &s.counters.watchResets}
	if err := s.using(func() {
		s.feed.add(w)
		s.wg.Add(1) // under inFlight, so Close cannot be waiting on wg yet
		go func() {
			defer s.wg.Done()
			defer close(w.ch)
			defer s.feed.remove(w)
			w.deliver(ctx, s.ctx)
		}()
	}); err != nil {
		return nil, err
	}
	// A watcher needs the poller. Checked after the watcher is counted
	// (feed.add), as the poller checks for watchers after it marks itself
	// dormant (Store.sleep): one of the two sees the other. Not inside using,
	// as resume enters.
	if s.state.Load()&stateDormant != 0 {
		s.resume()
	}
	return w.ch, nil
}

// feed sends changes to the watchers of their namespaces.
type feed struct {
	// n counts the watchers, so that writes skip the feed when there are
	// none.
	n atomic.Int32

	// order orders the changes sent, and guards byNS: see order.go.
	order servedOrder
	byNS  map[string][]*watcher
}

func (f *feed) add(w *watcher) {
	f.order.lock()
	defer f.order.unlock()
	if f.byNS == nil {
		f.byNS = make(map[string][]*watcher)
	}
	f.byNS[w.ns] = append(f.byNS[w.ns], w)
	f.n.Add(1)
}

func (f *feed) remove(w *watcher) {
	f.order.lock()
	defer f.order.unlock()
	ws := f.byNS[w.ns]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(f.byNS, w.ns)
	} else {
		f.byNS[w.ns] = ws
	}
	f.n.Add(-1)
}

// active reports whether anyone watches; a hint, read without mu.
func (f *feed) active() bool { return f.n.Load() > 0 }

// watchedLocked reports whether ns has watchers. Called with mu held.
func (f *feed) watchedLocked(ns string) bool { return len(f.byNS[ns]) > 0 }

// sendLocked queues ev for the watchers of its namespace. Called with mu
// held; it never blocks.
func (f *feed) sendLocked(ev Event) {
	for _, w := range f.byNS[ev.Namespace] {
		w.push(ev)
	}
}

// resetAllLocked queues an OpReset for every watcher.
func (f *feed) resetAllLocked() {
	for ns, ws := range f.byNS {
		for _, w := range ws {
			w.push(Event{Namespace: ns, Op: OpReset})
		}
	}
}

// staleAllLocked queues an OpStale for every watcher: the change stream is
// down.
func (f *feed) staleAllLocked() {
	for ns, ws := range f.byNS {
		for _, w := range ws {
			w.push(Event{Namespace: ns, Op: OpStale})
		}
	}
}

// freshAllLocked queues for every watcher the OpReset that ends an
// OpStale, dropping an OpStale not yet delivered: the stream is back.
func (f *feed) freshAllLocked() {
	for ns, ws := range f.byNS {
		for _, w := range ws {
			w.mu.Lock()
			w.stale = false
			w.mu.Unlock()
			w.push(Event{Namespace: ns, Op: OpReset})
		}
	}
}

// watcher is one Watch call's queue of events and the goroutine that
// delivers them.
type watcher struct {
	ns     string
	ch     chan Event
	wake   chan struct{} // capacity 1: something was queued
	resets *atomic.Uint64

	mu sync.Mutex // guards the fields below
	// reset says an OpReset is due before the events of queue, and stale
	// an OpStale, after the OpReset.
	reset, stale bool
	queue        backlog
}

// push queues ev, coalescing it with the event queued for its key.
func (w *watcher) push(ev Event) {
	w.mu.Lock()
	switch ev.Op {
	case OpReset:
		w.queue.drop()
		w.reset = true
	case OpStale:
		w.stale = true
	default:
		if !w.queue.put(pending{key: ev.Key, value: ev.Value, op: ev.Op}) {
			w.queue.drop()
			w.reset = true
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next pops the next event to deliver.
func (w *watcher) next() (Event, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reset {
		w.reset = false
		return Event{Namespace: w.ns, Op: OpReset}, true
	}
	if w.stale {
		w.stale = false
		return Event{Namespace: w.ns, Op: OpStale}, true
	}
	p, ok := w.queue.pop()
	if !ok {
		return Event{}, false
	}
	return Event{Namespace: w.ns, Key: p.key, Op: p.op, Value: p.value}, true
}

// deliver sends the queued events on w.ch until ctx or life ends.
func (w *watcher) deliver(ctx, life context.Context) {
	for {
		ev, ok := w.next()
		if !ok {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			case <-life.Done():
				return
			}
		}
		select {
		case w.ch <- ev:
			if ev.Op == OpReset {
				w.resets.Add(1)
			}
		case <-ctx.Done():
			return
		case <-life.Done():
			return
		}
	}
}
