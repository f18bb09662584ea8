package opstate

// backlog is the events a watcher holds for a consumer that has not
// received them: at most one per key, the latest, in the order their keys
// were first queued, and at most MaxPendingEvents in all. They wait in a
// ring, which grows by doubling as the consumer falls behind and is let go
// once the consumer has caught up, so that a watcher holds one slot per
// pending key at most, and nearly nothing when none is pending.
type backlog struct {
	ring []pending      // the n events from head on, wrapping around
	head int            // where the oldest event is in ring
	n    int            // how many events are pending
	at   map[string]int // the index in ring of each pending key's event
}

// pending is one event waiting for its consumer; its namespace is the
// watcher's.
type pending struct {
	key, value string
	op         Op
}

const (
	// minRing is the length of a backlog's first ring.
	minRing = 16
	// keptRing is the longest ring an empty backlog keeps: a longer one
	// was grown by a consumer that fell behind and has caught up.
	keptRing = 64
)

// put queues p, or replaces the event pending for its key. It returns
// false, queueing nothing, when p's key has no event pending and
// MaxPendingEvents have.
func (b *backlog) put(p pending) bool {
	if i, ok := b.at[p.key]; ok {
		b.ring[i] = p
		return true
	}
	if b.n >= MaxPendingEvents {
		return false
	}
	if b.n == len(b.ring) {
		b.grow()
	}
	i := b.wrap(b.head + b.n)
	b.ring[i] = p
	b.at[p.key] = i
	b.n++
	return true
}

// grow moves the pending events to a ring twice as long (up to
// MaxPendingEvents), from its start.
func (b *backlog) grow() {
	ring := make([]pending, min(max(2*len(b.ring), minRing), MaxPendingEvents))
	if b.at == nil {
		b.at = make(map[string]int, len(ring))
	}
	for j := range b.n {
		ring[j] = b.ring[(b.head+j)%len(b.ring)]
		b.at[ring[j].key] = j
	}
	b.ring, b.head = ring, 0
}

// wrap returns the index in the ring of i, which is less than twice its
// length.
func (b *backlog) wrap(i int) int {
	if i >= len(b.ring) {
		i -= len(b.ring)
	}
	return i
}

// pop removes and returns the oldest pending event; ok is false when
// none is pending.
func (b *backlog) pop() (p pending, ok bool) {
	if b.n == 0 {
		return pending{}, false
	}
	p = b.ring[b.head]
	b.ring[b.head] = pending{}
	delete(b.at, p.key)
	b.head = b.wrap(b.head + 1)
	b.n--
	if b.n == 0 {
		b.head = 0
		if len(b.ring) > keptRing {
			b.ring, b.at = nil, nil
		}
	}
	return p, true
}

// drop empties the backlog. It keeps the ring: the consumer is behind,
// and the ring will fill again.
func (b *backlog) drop() {
	clear(b.ring)
	clear(b.at)
	b.head, b.n = 0, 0
}
