package serve

import (
	"sync"
	"time"
)

// streamShare is the share of one processor that the sends of a Server's
// event streams may take together, on average, while changes keep coming:
// the rest stays the writers'. sendCost is what one send costs, the wake
// of the stream's goroutine and the write and flush of the answer
// included, and byteCost what each byte sent adds (copying it from the
// feed, and through the kernel's TCP stack, which makes most of a large
// send's cost): estimates, rounded up, of what BenchmarkSetStreams spends
// (the figures are in docs/performance.md).
const (
	streamShare = 0.5
	sendCost    = 30 * time.Microsecond
	byteCost    = 10 * time.Nanosecond
)

// maxBurst bounds what a stream sends at once, and so what it holds for
// a slow client: the feed keeps the rest, coalesced per key.
const maxBurst = 64 << 10

// pacer spaces the sends of a Server's event streams, so that, however
// many streams follow a namespace, their work takes about streamShare of
// a processor at most: each send takes the next free slot, a slot being
// the send's estimated cost divided by streamShare. A stream waiting for
// its slot copies nothing meanwhile; the changes it is owed are coalesced
// per key in its feed, and it then sends them all at once. A send finds
// its slot free at once unless others sent in the last few slots: a few
// streams, or rare changes, are never held back.
//
// What a send holds is known only once its slot has come: a stream
// reserves its slot for as many bytes as its last send had, and charges
// the bytes beyond that afterwards. (Charging them all afterwards would
// let every stream of a namespace send its first burst of a flood in
// slots sized for nothing, before the charges delay anyone.)
type pacer struct {
	mu sync.Mutex
	// next is when the next slot begins; a slot in the past is not
	// owed to anyone (no credit builds up while the streams are idle).
	next time.Time
}

// cost returns the length of the slot of a send of n bytes.
func cost(n int) time.Duration {
	return time.Duration(float64(sendCost+time.Duration(n)*byteCost) / streamShare)
}

// reserve takes the next slot, for a send of n bytes, and returns how
// long to wait for it.
func (p *pacer) reserve(n int) time.Duration {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(cost(n))
	return wait
}

// charge moves the next slot later by the cost of n bytes more than a
// send's slot was reserved for.
func (p *pacer) charge(n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = p.next.Add(cost(n) - cost(0))
}
