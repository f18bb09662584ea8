package opstate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// backlogModel is what a backlog must hold: the keys pending in the order
// they were first queued, and the latest event of each.
type backlogModel struct {
	order  []string
	latest map[string]pending
}

func (m *backlogModel) put(p pending) bool {
	if _, ok := m.latest[p.key]; ok {
		m.latest[p.key] = p
		return true
	}
	if len(m.order) >= MaxPendingEvents {
		return false
	}
	m.order = append(m.order, p.key)
	m.latest[p.key] = p
	return true
}

func (m *backlogModel) pop() (pending, bool) {
	if len(m.order) == 0 {
		return pending{}, false
	}
	p := m.latest[m.order[0]]
	delete(m.latest, m.order[0])
	m.order = m.order[1:]
	return p, true
}

// TestBacklog drives a watcher's backlog as consumers drive it — keeping
// up, never receiving, receiving one event for every two written, in
// bursts — against a plain model, and checks after every step that it
// pops what the model does, holds a slot for MaxPendingEvents events at
// most and an index entry per pending key, and, once emptied by its
// consumer, keeps no ring longer than keptRing: the memory a watcher
// holds stays within Watch's documented bound, and returns once its
// consumer has caught up.
func TestBacklog(t *testing.T) {
	tests := []struct {
		name string
		keys int     // how many distinct keys are written
		pops float64 // events received per event written
		all  bool    // the consumer receives everything, every so often
	}{
		{"keeps up", 100, 1, false},
		{"never receives", 10 * MaxPendingEvents, 0, false},
		{"receives half", 10 * MaxPendingEvents, 0.5, false},
		{"receives half, few keys", MaxPendingEvents / 2, 0.5, false},
		{"bursts", 10 * MaxPendingEvents, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var b backlog
			m := &backlogModel{latest: map[string]pending{}}
			grew := 0    // the longest ring since the backlog was last empty
			longest := 0 // the longest ring of all
			pop := func(step int) {
				got, gotOK := b.pop()
				want, wantOK := m.pop()
				if got != want || gotOK != wantOK {
					t.Fatalf("step %d: pop() = %+v, %v; want %+v, %v", step, got, gotOK, want, wantOK)
				}
				if gotOK && b.n == 0 && grew > keptRing && b.ring != nil {
					t.Fatalf("step %d: emptied by its consumer, the backlog keeps a ring of %d; want none", step, len(b.ring))
				}
			}
			drops := 0
			for step := range 20 * MaxPendingEvents {
				p := pending{key: fmt.Sprint("k", rng.IntN(tt.keys)), value: fmt.Sprint(step), op: OpSet}
				if rng.IntN(4) == 0 {
					p.op, p.value = OpDelete, ""
				}
				ok, want := b.put(p), m.put(p)
				if ok != want {
					t.Fatalf("step %d: put(%+v) = %v; want %v", step, p, ok, want)
				}
				if !ok { // as the watcher does: an OpReset in place of all
					b.drop()
					m.order, m.latest = nil, map[string]pending{}
					drops++
				}
				grew = max(grew, len(b.ring))
				longest = max(longest, len(b.ring))
				if rng.Float64() < tt.pops {
					pop(step)
				}
				if tt.all && step%(3*MaxPendingEvents) == 0 {
					for b.n > 0 {
						pop(step)
					}
				}
				if len(b.ring) > MaxPendingEvents || b.n != len(b.at) || b.n != len(m.order) {
					t.Fatalf("step %d: ring of %d slots, %d events, %d indexed; want at most %d slots and %d events, each indexed",
						step, len(b.ring), b.n, len(b.at), MaxPendingEvents, len(m.order))
				}
				if b.n == 0 {
					grew = len(b.ring)
				}
			}
			for b.n > 0 {
				pop(-1)
			}
			if slices.ContainsFunc(b.ring, func(p pending) bool { return p != pending{} }) {
				t.Errorf("an empty backlog's ring still holds events")
			}
			t.Logf("%d OpResets, the longest ring %d", drops, longest)
		})
	}
}

// BenchmarkWatcherPush measures what queueing an event costs a writer, per
// watcher of the namespace, and what taking it off costs the watcher's
// goroutine, for consumers that keep up, receive one event for every two
// written, and never receive (whose backlog overflows into an OpReset
// every MaxPendingEvents keys). The keys cycle through 10,000.
func BenchmarkWatcherPush(b *testing.B) {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	for _, c := range []struct {
		name  string
		every int // the consumer takes an event after every this many; 0: never
	}{{"keeps-up", 1}, {"half", 2}, {"never", 0}} {
		b.Run(c.name, func(b *testing.B) {
			w := &watcher{ns: "ns", wake: make(chan struct{}, 1)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w.push(Event{Namespace: "ns", Key: keys[i%len(keys)], Op: OpSet, Value: "v"})
				<-w.wake
				if c.every > 0 && i%c.every == 0 {
					w.next()
				}
				i++
			}
		})
	}
}
