package opstate

import (
	"sync"
	"sync/atomic"
	"time"
)

// A topic is one watched namespace's changes, shared by all its watchers:
// the latest change of each key, in the order of the changes (a key
// changed again moves to the end), numbered, and at most MaxPendingEvents
// keys. A writer records a change in constant time, however many watch
// the namespace; each watcher reads the changes numbered after its own
// position, at its own pace, on its own goroutine. What a watcher that
// falls behind is owed is thereby coalesced per key, the latest winning,
// in one copy for all watchers; and once more than MaxPendingEvents keys
// changed since its position, some change it is owed is gone from the
// topic, and it gets an OpReset instead (see watcher.read).
//
// OpReset and OpStale are not kept per key: each records the number it
// was given (resetSeq, staleSeq), and a watcher whose position is before
// it is owed it. A reset also forgets every change before it, which the
// OpReset tells the watcher to re-read.
type topic struct {
	ns string

	// mu guards the fields below. Writers (under servedOrder) lock it for
	// a constant time; watchers read-lock it while they copy a batch.
	mu sync.RWMutex
	// seq is the number of the newest change, reset or stale; 0 before any.
	seq uint64
	// head and tail are the oldest and the newest change kept; byKey finds
	// each key's, and n counts them.
	head, tail *change
	byKey      map[string]*change
	n          int
	// forgot is the number of the newest change dropped from the head to
	// keep MaxPendingEvents: a watcher whose position is before it missed
	// a change, and is owed an OpReset.
	forgot uint64
	// resetSeq and staleSeq are the numbers of the latest OpReset and
	// OpStale; fresh, once the change stream is back, cancels an OpStale
	// a watcher has not received yet (staleSeq 0).
	resetSeq, staleSeq uint64
	// changed is closed, and replaced, when something was recorded: the
	// watchers wait on it. The writer does not close it itself (waking N
	// watchers costs N), but kicks the topic's broadcaster.
	changed chan struct{}

	kick chan struct{} // capacity 1: something was recorded
	done chan struct{} // closed when the last watcher leaves: the broadcaster returns

	// sent counts the events the watchers sent since the broadcaster last
	// looked: with the number of watchers, what waking them cost (see
	// broadcast).
	sent atomic.Int64
	// watchers counts the topic's watchers; changed under servedOrder.
	watchers atomic.Int32
}

// change is the latest change of one key in a topic.
type change struct {
	key, value string
	op         Op
	seq        uint64
	// gone is set when the change left the topic (replaced by a newer
	// change of its key, dropped from the head, or forgotten by a reset):
	// a watcher holding it finds its place again from the tail.
	gone       bool
	prev, next *change
	// superseded is set, before gone, when a newer change of the key was
	// recorded: a watcher that copied this one and has not sent it yet
	// drops it, and sends the newer one, which comes after its position,
	// so that what waits for a slow consumer stays coalesced per key.
	superseded atomic.Bool
}

func newTopic(ns string) *topic {
	return &topic{
		ns:      ns,
		byKey:   make(map[string]*change),
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// put records the change of a key (OpSet, OpDelete, OpExpire): it moves to
// the end, with the next number.
func (t *topic) put(key, value string, op Op) {
	t.mu.Lock()
	t.seq++
	if c := t.byKey[key]; c != nil {
		c.superseded.Store(true)
		t.unlinkLocked(c)
		c.gone = true
	}
	c := &change{key: key, value: value, op: op, seq: t.seq, prev: t.tail}
	if t.tail != nil {
		t.tail.next = c
	} else {
		t.head = c
	}
	t.tail = c
	t.byKey[key] = c
	t.n++
	if t.n > MaxPendingEvents {
		h := t.head
		t.unlinkLocked(h)
		delete(t.byKey, h.key)
		h.gone = true
		t.forgot = h.seq
	}
	t.mu.Unlock()
	t.notify()
}

// unlinkLocked takes c out of the list; byKey is the caller's.
func (t *topic) unlinkLocked(c *change) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		t.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.tail = c.prev
	}
	c.prev, c.next = nil, nil
	t.n--
}

// reset records an OpReset, and forgets every change before it.
func (t *topic) reset() {
	t.mu.Lock()
	t.seq++
	t.resetSeq = t.seq
	for c := t.head; c != nil; {
		next := c.next
		c.gone, c.prev, c.next = true, nil, nil
		c = next
	}
	t.head, t.tail, t.n = nil, nil, 0
	clear(t.byKey)
	t.mu.Unlock()
	t.notify()
}

// stale records an OpStale.
func (t *topic) stale() {
	t.mu.Lock()
	t.seq++
	t.staleSeq = t.seq
	t.mu.Unlock()
	t.notify()
}

// fresh records the OpReset that ends an OpStale, cancelling an OpStale
// not received yet.
func (t *topic) fresh() {
	t.mu.Lock()
	t.staleSeq = 0
	t.mu.Unlock()
	t.reset()
}

// notify tells the broadcaster that something was recorded; it never
// blocks.
func (t *topic) notify() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// watcherShare is the share of one processor that waking a namespace's
// watchers may take, on average, while writes keep coming: the rest stays
// the writers'. wakeCost is what waking one watcher costs, taking what it
// is owed included, and sendCost what sending one event costs, its
// consumer's wake and receive included: estimates, rounded up, of what
// BenchmarkSetWatched spends. (The watchers' own clocks would not do: a
// watcher woken with thousands of others spends most of its time waiting
// for a processor, which is no cost of its own.)
const (
	watcherShare = 0.5
	wakeCost     = 2 * time.Microsecond
	sendCost     = 1 * time.Microsecond
)

// maxWakeEvents is the most events a wake can make a watcher send: what
// it can be owed, MaxPendingEvents changes, an OpReset and an OpStale.
const maxWakeEvents = MaxPendingEvents + 2

// broadcast wakes the topic's watchers after every kick until done, on a
// goroutine of its own, so that a writer's cost does not grow with the
// watchers it wakes. A wake of N watchers costs them N times the work of
// taking and sending what they are owed, and keeps the processors from
// the writers meanwhile: so that the watchers take at most watcherShare
// of a processor, the next wake waits, after the last one began, for
// their work since (wakeCost a watcher and sendCost an event sent)
// divided by watcherShare. A topic whose watchers are
// few, or whose writes are rare, never waits; one of many watchers under
// a flood of writes wakes them in waves, each taking more changes
// (coalesced per key) at once.
//
// A wake is charged for at most maxWakeEvents a watcher: what a watcher
// sends beyond what it was owed when woken, it sends without waiting for
// a wake (behind its writers, at its consumer's pace), which pacing can
// neither cause nor slow. Charged for all of it, a wake would wait longer
// the more such watchers sent during the wait before: once they sent
// faster than watcherShare/sendCost events a second, each wait would be
// longer than the last, for as long as the flood lasted. So the next wake
// comes at most N × (wakeCost + maxWakeEvents × sendCost) / watcherShare
// after the last (about 8 ms a watcher).
func (t *topic) broadcast() {
	var pace *time.Timer
	var last time.Time
	for {
		select {
		case <-t.done:
			return
		case <-t.kick:
		}
		n := int64(t.watchers.Load())
		sent := min(t.sent.Swap(0), n*maxWakeEvents)
		work := time.Duration(n)*wakeCost + time.Duration(sent)*sendCost
		if gap := time.Duration(float64(work) / watcherShare); !last.IsZero() {
			if wait := time.Until(last.Add(gap)); wait > 0 {
				if pace == nil {
					pace = time.NewTimer(wait)
				} else {
					pace.Reset(wait)
				}
				select {
				case <-t.done:
					return
				case <-pace.C:
				}
			}
		}
		last = time.Now()
		t.mu.Lock()
		ch := t.changed
		t.changed = make(chan struct{})
		t.mu.Unlock()
		close(ch)
	}
}

// cursor is a watcher's position in its topic: the number of the last
// change, reset or stale it has taken, and the change it took last, from
// whose successor it goes on while that change is still in the topic.
type cursor struct {
	seq  uint64
	last *change
	// stale is the number of the last OpStale taken, so that it is taken
	// once whatever seq does.
	stale uint64
}

// start returns the cursor of a watcher that is owed what is recorded
// from now on.
func (t *topic) start() cursor {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return cursor{seq: t.seq, last: t.tail, stale: t.staleSeq}
}

// batchSize bounds the events a watcher copies at once, and so what it
// holds while its consumer is slow.
const batchSize = 64

// owed is an event a watcher copied from its topic, with the change it
// reports (nil for OpReset and OpStale).
type owed struct {
	ev Event
	c  *change
}

// read appends to buf what cur is owed, up to batchSize changes, advances
// cur past them, and returns buf with the channel that is closed once more
// is recorded. An OpReset owed comes first, then an OpStale, then the
// changes in their order.
func (t *topic) read(cur *cursor, buf []owed) ([]owed, <-chan struct{}) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if cur.seq < t.resetSeq || cur.seq < t.forgot {
		// A reset since, or a change owed is gone: the consumer re-reads
		// the namespace, which covers every change until then; the
		// changes recorded after it follow.
		buf = append(buf, owed{ev: Event{Namespace: t.ns, Op: OpReset}})
		cur.seq, cur.last = max(t.resetSeq, t.forgot), nil
		if t.staleSeq > t.resetSeq && t.staleSeq > cur.stale {
			buf = append(buf, owed{ev: Event{Namespace: t.ns, Op: OpStale}})
			cur.stale = t.staleSeq
		}
		return buf, t.changed
	}
	if t.staleSeq > cur.stale {
		buf = append(buf, owed{ev: Event{Namespace: t.ns, Op: OpStale}})
		cur.stale = t.staleSeq
	}
	// The first change after cur: the successor of the last one taken
	// while that is still in the topic (always in order), else found
	// from the tail.
	var c *change
	if cur.last != nil && !cur.last.gone {
		c = cur.last.next
	} else {
		c = t.tail
		for c != nil && c.prev != nil && c.prev.seq > cur.seq {
			c = c.prev
		}
		if c != nil && c.seq <= cur.seq {
			c = nil
		}
	}
	for n := 0; c != nil && n < batchSize; c, n = c.next, n+1 {
		buf = append(buf, owed{ev: Event{Namespace: t.ns, Key: c.key, Op: c.op, Value: c.value}, c: c})
		cur.last = c
	}
	// Past the last change taken, or, if the batch ended first, up to it.
	if c == nil {
		cur.seq = t.seq
	} else {
		cur.seq = cur.last.seq
	}
	return buf, t.changed
}
