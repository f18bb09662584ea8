package serve

import (
	"context"
	"sync"

	"github.com/d8da9184/opstate"
)

// feedBytes bounds the bytes of the encoded events a feed keeps for its
// streams, as opstate.MaxPendingEvents bounds their number: a stream
// behind by more gets a reset event in their place.
const feedBytes = 16 << 20

// feeds are a Server's shared watches: one [opstate.Store.Watch] for each
// namespace that event streams follow, whatever their number and kind.
// Each change is taken from the Watch once, encoded once, and kept, the
// latest of each key, for the streams to copy at their own pace: a
// stream costs no goroutine, no channel and no copy of an event of its
// own.
type feeds struct {
	mu   sync.Mutex       // guards byNS and every feed's subs
	byNS map[string]*feed // the feed new streams of a namespace join
}

// feed is one namespace's shared watch, from the first stream's subscribe
// to the last one's unsubscribe, or the Store's closing. Like the Store's
// own topics (topic.go in the root package), it keeps the latest change of
// each key, in the order of the changes, numbered: a stream reads the
// changes numbered after its cursor, so that what waits for a stream
// that is behind is coalesced per key, in one copy for all; past
// opstate.MaxPendingEvents keys or feedBytes bytes the oldest are
// dropped, and a stream that missed one gets a reset event instead.
type feed struct {
	ns   string
	subs int // the streams subscribed; guarded by feeds.mu

	// mu guards the fields below: the recording goroutine locks it, the
	// streams read-lock it while they copy.
	mu sync.RWMutex
	// seq is the number of the newest change, reset or stale recorded.
	seq uint64
	// head and tail are the oldest and newest change kept, byKey finds
	// each key's; n and size count them and their bytes.
	head, tail *entry
	byKey      map[string]*entry
	n, size    int
	// forgot is the number of the newest change dropped to keep the
	// bounds: a stream whose cursor is before it missed one.
	forgot uint64
	// resetSeq and staleSeq are the numbers of the latest reset and
	// stale events; flagSeq of the latest change or reset (what changes
	// a flag: not stale).
	resetSeq, staleSeq, flagSeq uint64
	// changed is closed, and replaced, when something is recorded.
	changed chan struct{}

	reset, stale []byte        // the namespace's reset and stale events, encoded
	closed       chan struct{} // closed when the Watch ended because the Store closed
	done         chan struct{} // closed when run has returned
	cancel       context.CancelFunc
}

// entry is the latest change of one key, encoded as the event streams
// send it.
type entry struct {
	key  string
	data []byte
	seq  uint64
	// gone is set when the entry left the feed (replaced by a newer change
	// of its key, dropped, or forgotten by a reset): a stream holding it
	// finds its place again from the tail.
	gone       bool
	prev, next *entry
}

// cursor is a stream's place in its feed: the number of the last change,
// reset or stale it has taken, and the entry it took last, from whose
// successor it goes on while that entry is still in the feed.
type cursor struct {
	seq   uint64
	last  *entry
	stale uint64 // the number of the last stale event taken
}

// encodeEvent returns ev as a Server-Sent Event of the key-value stream.
func encodeEvent(ev opstate.Event) []byte {
	b := append([]byte("data: "), appendEvent(nil, ev)...)
	return append(b, "\n\n"...)
}

func newFeed(ns string, cancel context.CancelFunc) *feed {
	return &feed{
		ns:      ns,
		byKey:   make(map[string]*entry),
		changed: make(chan struct{}),
		reset:   encodeEvent(opstate.Event{Namespace: ns, Op: opstate.OpReset}),
		stale:   encodeEvent(opstate.Event{Namespace: ns, Op: opstate.OpStale}),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
		cancel:  cancel,
	}
}

// subscribe joins the feed of ns, starting one (and its Watch) if there is
// none or if the Store closed under the last, and returns it with the
// cursor of a stream that is owed what is recorded from now on: every
// change committed after subscribe returns, and perhaps some just before,
// whose events the Watch had not delivered yet. Its error is the Watch's.
func (fs *feeds) subscribe(store *opstate.Store, ns string) (*feed, cursor, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.byNS[ns]
	if f != nil {
		select {
		case <-f.closed:
			f = nil // its streams end; a new one learns why from Watch
		default:
		}
	}
	if f == nil {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := store.Watch(ctx, ns)
		if err != nil {
			cancel()
			return nil, cursor{}, err
		}
		f = newFeed(ns, cancel)
		go f.run(ctx, ch)
		if fs.byNS == nil {
			fs.byNS = make(map[string]*feed)
		}
		fs.byNS[ns] = f
	}
	f.subs++
	return f, f.start(), nil
}

// unsubscribe leaves f; the last stream to leave ends its Watch and waits
// for its goroutine.
func (fs *feeds) unsubscribe(f *feed) {
	fs.mu.Lock()
	f.subs--
	last := f.subs == 0
	if last && fs.byNS[f.ns] == f {
		delete(fs.byNS, f.ns)
	}
	fs.mu.Unlock()
	if last {
		f.cancel()
		<-f.done
	}
}

// run records the Watch's events until it ends.
func (f *feed) run(ctx context.Context, ch <-chan opstate.Event) {
	defer close(f.done)
	for ev := range ch {
		f.record(ev)
	}
	if ctx.Err() == nil {
		close(f.closed)
	}
}

// record keeps ev for the streams and wakes those waiting.
func (f *feed) record(ev opstate.Event) {
	var data []byte
	if ev.Op != opstate.OpReset && ev.Op != opstate.OpStale {
		data = encodeEvent(ev) // outside the lock
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	switch ev.Op {
	case opstate.OpReset:
		f.resetSeq, f.flagSeq = f.seq, f.seq
		for e := f.head; e != nil; {
			next := e.next
			e.gone, e.prev, e.next = true, nil, nil
			e = next
		}
		f.head, f.tail, f.n, f.size = nil, nil, 0, 0
		clear(f.byKey)
	case opstate.OpStale:
		f.staleSeq = f.seq
	default:
		f.flagSeq = f.seq
		if e := f.byKey[ev.Key]; e != nil {
			f.unlinkLocked(e)
		}
		e := &entry{key: ev.Key, data: data, seq: f.seq, prev: f.tail}
		if f.tail != nil {
			f.tail.next = e
		} else {
			f.head = e
		}
		f.tail = e
		f.byKey[ev.Key] = e
		f.n++
		f.size += len(data)
		for f.n > 1 && (f.n > opstate.MaxPendingEvents || f.size > feedBytes) {
			h := f.head
			f.unlinkLocked(h)
			f.forgot = h.seq
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// unlinkLocked takes e out of the feed.
func (f *feed) unlinkLocked(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		f.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		f.tail = e.prev
	}
	delete(f.byKey, e.key)
	e.gone, e.prev, e.next = true, nil, nil
	f.n--
	f.size -= len(e.data)
}

// start returns the cursor of a stream owed what is recorded from now on.
func (f *feed) start() cursor {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return cursor{seq: f.seq, last: f.tail, stale: f.staleSeq}
}

// wait returns the channel closed when something is recorded after what
// cur has taken: closed already if there is something.
func (f *feed) wait(cur cursor) <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if cur.seq < f.seq {
		c := make(chan struct{})
		close(c)
		return c
	}
	return f.changed
}

// take appends to b the events cur is owed, until b holds maxBurst bytes,
// and advances cur past them; more reports that cur is owed more. A reset
// owed comes first (the Watch's, or one for changes dropped before cur
// took them: the client re-reads the namespace, which covers every change
// until then), then a stale event, then the changes in their order.
func (f *feed) take(cur *cursor, b []byte) (out []byte, more bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if cur.seq < f.resetSeq || cur.seq < f.forgot {
		b = append(b, f.reset...)
		cur.seq, cur.last = max(f.resetSeq, f.forgot), nil
		// A stale event after the reset is owed; one before it is
		// over (the reset that ends an outage follows it).
		if f.staleSeq > f.resetSeq && f.staleSeq > cur.stale {
			b = append(b, f.stale...)
		}
		cur.stale = f.staleSeq
		return b, cur.seq < f.seq
	}
	if f.staleSeq > cur.stale {
		b = append(b, f.stale...)
		cur.stale = f.staleSeq
	}
	// The first change after cur: the successor of the last one taken
	// while that is still in the feed (always in order), else found from
	// the tail.
	var e *entry
	if cur.last != nil && !cur.last.gone {
		e = cur.last.next
	} else {
		e = f.tail
		for e != nil && e.prev != nil && e.prev.seq > cur.seq {
			e = e.prev
		}
		if e != nil && e.seq <= cur.seq {
			e = nil
		}
	}
	for ; e != nil && len(b) < maxBurst; e = e.next {
		b = append(b, e.data...)
		cur.last = e
	}
	if e == nil {
		cur.seq = f.seq
	} else {
		cur.seq = cur.last.seq
	}
	return b, e != nil
}

// refetch appends OFREP's refetchEvaluation event to b if a flag changed
// after what cur has taken (a change or a reset: not stale), and advances
// cur past everything recorded.
func (f *feed) refetch(cur *cursor, b []byte) (out []byte, more bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.flagSeq > cur.seq {
		b = append(b, refetch...)
	}
	cur.seq, cur.last, cur.stale = f.seq, nil, f.staleSeq
	return b, false
}
