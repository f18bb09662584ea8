package serve

import (
	"sync"
	"time"
)

// streamShare is the share of one processor that the sends of a Server's
// event streams may take together, on average, while changes keep coming:
// the rest stays the writers'. sendCost is what one send costs, a write
// and flush of the answer and the wake of the stream's goroutine
// included: an estimate, rounded up, of what BenchmarkSetStreams spends
// (the figures are in docs/performance.md). The events in a send add
// little: each was encoded once for all the streams (feed), and a send
// copies their bytes.
const (
	streamShare = 0.5
	sendCost    = 30 * time.Microsecond
)

// maxBurst bounds what a stream sends at once, and so what it holds for
// a slow client: the feed keeps the rest, coalesced per key.
const maxBurst = 64 << 10

// pacer spaces the sends of a Server's event streams, so that, however
// many streams follow a namespace, their work takes about streamShare of
// a processor at most: each send takes the next free slot, slots being
// sendCost divided by streamShare apart. A stream waiting for its slot
// copies nothing meanwhile; the changes it is owed are coalesced per key
// in its feed, and it then sends them all at once. A send finds its slot
// free at once unless others sent in the last few slots: a few streams,
// or rare changes, are never held back.
type pacer struct {
	mu sync.Mutex
	// next is when the next slot begins; a slot in the past is not
	// owed to anyone (no credit builds up while the streams are idle).
	next time.Time
}

// reserve takes the next slot and returns how long to wait for it.
func (p *pacer) reserve() time.Duration {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(sendCost) / streamShare))
	return wait
}
