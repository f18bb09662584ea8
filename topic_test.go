package opstate

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// reader is a watcher's consumer in TestTopicModel: it takes a batch from
// the topic and sends it one event at a time, as watcher.deliver does,
// and builds the namespace from what it receives.
type reader struct {
	cur   cursor
	batch []owed // taken, not yet sent
	state map[string]string
	last  map[string]int // the counter of the last value received per key
	got   int
}

// TestTopicModel drives a topic as a Store does — sets and deletes of a few
// or many keys, resets, the change stream going down and coming back —
// with readers that keep up, fall behind, or stop for long stretches, and
// checks what Watch promises of what each receives: the events of a key in
// the order of its changes, never one already superseded when it was
// sent, an OpReset where a change was lost, and, once every reader has
// caught up, a namespace built from the events (re-read on every OpReset)
// that equals the truth.
func TestTopicModel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  int
		paces []float64 // per reader: the chance that it takes a step after each write
	}{
		{"few keys", 20, []float64{1, 0.3, 0.01}},
		{"many keys", 3 * MaxPendingEvents, []float64{1, 0.5, 0.001}},
		{"at the bound", MaxPendingEvents, []float64{1, 0.05, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.keys)))
			tp := newTopic("ns")
			truth := map[string]string{}
			readers := make([]*reader, len(tc.paces))
			for i := range readers {
				readers[i] = &reader{cur: tp.start(), state: map[string]string{}, last: map[string]int{}}
			}
			counter := 0
			step := func(r *reader) bool {
				if len(r.batch) == 0 {
					r.batch, _ = tp.read(&r.cur, r.batch[:0])
					if len(r.batch) == 0 {
						return false
					}
				}
				o := r.batch[0]
				r.batch = r.batch[1:]
				if o.c != nil && o.c.superseded.Load() {
					return true
				}
				r.receive(t, o.ev, truth)
				return true
			}
			for range 10 * tc.keys {
				counter++
				k := "k" + strconv.Itoa(rng.IntN(tc.keys))
				switch x := rng.IntN(1000); {
				case x < 2:
					tp.reset()
					truth = map[string]string{} // DeleteNamespace
				case x < 4:
					tp.stale()
				case x < 6:
					tp.fresh()
				case x < 150:
					delete(truth, k)
					tp.put(k, "", OpDelete)
				default:
					v := strconv.Itoa(counter)
					truth[k] = v
					tp.put(k, v, OpSet)
				}
				for i, r := range readers {
					for rng.Float64() < tc.paces[i] && step(r) {
					}
				}
			}
			for i, r := range readers {
				for step(r) {
				}
				if !maps.Equal(r.state, truth) {
					t.Errorf("reader %d (pace %v): built %d keys from %d events, truth has %d", i, tc.paces[i], len(r.state), r.got, len(truth))
				}
			}
		})
	}
}

// receive applies ev to r's namespace, checking that a key's events come in
// the order of its changes.
func (r *reader) receive(t *testing.T, ev Event, truth map[string]string) {
	t.Helper()
	r.got++
	switch ev.Op {
	case OpReset:
		r.state = maps.Clone(truth) // the consumer re-reads the namespace
		clear(r.last)
	case OpStale:
	case OpSet:
		n, _ := strconv.Atoi(ev.Value)
		if n <= r.last[ev.Key] {
			t.Fatalf("%s=%s received after a value written later (%d)", ev.Key, ev.Value, r.last[ev.Key])
		}
		r.last[ev.Key] = n
		r.state[ev.Key] = ev.Value
	case OpDelete:
		delete(r.state, ev.Key)
	default:
		t.Fatalf("unexpected %v", ev.Op)
	}
}

// TestTopicBound checks the bound of what waits for a reader: behind by
// MaxPendingEvents keys it gets every change and no OpReset; behind by one
// more, an OpReset first. And the topic itself keeps MaxPendingEvents
// changes at most, however many keys change.
func TestTopicBound(t *testing.T) {
	for _, tc := range []struct {
		keys      int
		wantReset bool
	}{
		{MaxPendingEvents, false},
		{MaxPendingEvents + 1, true},
	} {
		t.Run(fmt.Sprint(tc.keys), func(t *testing.T) {
			tp := newTopic("ns")
			cur := tp.start()
			for i := range tc.keys {
				tp.put(fmt.Sprint("k", i), "v", OpSet)
				tp.put(fmt.Sprint("k", i), "w", OpSet) // coalesced: one change a key
			}
			if tp.n > MaxPendingEvents {
				t.Fatalf("the topic keeps %d changes; want at most %d", tp.n, MaxPendingEvents)
			}
			var all []Event
			for {
				batch, _ := tp.read(&cur, nil)
				if len(batch) == 0 {
					break
				}
				if len(batch) > batchSize+2 {
					t.Fatalf("a batch of %d; want at most %d changes and an OpReset and OpStale", len(batch), batchSize)
				}
				for _, o := range batch {
					all = append(all, o.ev)
				}
			}
			gotReset := len(all) > 0 && all[0].Op == OpReset
			if gotReset != tc.wantReset {
				t.Fatalf("behind by %d keys: first event %v; want an OpReset: %v", tc.keys, all[0], tc.wantReset)
			}
			if !tc.wantReset && len(all) != tc.keys {
				t.Errorf("behind by %d keys: %d events; want one a key", tc.keys, len(all))
			}
			for _, ev := range all {
				if ev.Op == OpSet && ev.Value != "w" {
					t.Fatalf("%s=%s; want the latest value, w", ev.Key, ev.Value)
				}
			}
		})
	}
}

// TestTopicPacing checks how the broadcaster paces wakes: a topic of one
// watcher is woken at once for a second change, while one of 10,000
// watchers waits after a wake for their cost (wakeCost each) over
// watcherShare before the next, so that under a flood of writes the
// watchers take a bounded share of the machine.
func TestTopicPacing(t *testing.T) {
	for _, tc := range []struct {
		watchers int32
		atLeast  time.Duration
	}{
		{1, 0},
		{10000, time.Duration(float64(10000*wakeCost) / watcherShare)},
	} {
		t.Run(fmt.Sprint(tc.watchers), func(t *testing.T) {
			tp := newTopic("ns")
			tp.watchers.Store(tc.watchers)
			go tp.broadcast()
			defer close(tp.done)
			wake := func() time.Time {
				tp.mu.RLock()
				ch := tp.changed
				tp.mu.RUnlock()
				tp.put("k", "v", OpSet)
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatal("no wake within 10s of a change")
				}
				return time.Now()
			}
			first := wake()
			gap := wake().Sub(first)
			if gap < tc.atLeast {
				t.Errorf("%d watchers woken again %v after a wake; want at least %v", tc.watchers, gap, tc.atLeast)
			}
			if tc.atLeast == 0 && gap > time.Second {
				t.Errorf("one watcher woken again %v after a wake; want at once", gap)
			}
			t.Logf("%d watchers: woken again after %v", tc.watchers, gap)
		})
	}
}

// TestTopicPacingBehind checks that the events sent by watchers that do
// not wait for wakes — behind their writers, each taking what it is owed
// at its consumer's pace — cannot push a namespace's wakes ever further
// apart. Pacing cannot slow those watchers; if the broadcaster charged a
// wake for all they sent, then once they sent more than 1/(2 × sendCost)
// events a second (500,000: a few hundred fast consumers of a bulk
// import, on a machine of many processors), each gap would be longer
// than the one before, for as long as they kept up the rate, and a
// watcher that has caught up would wait ever longer for its next event.
// Their sends are simulated on topic.sent, at 10 million a second so
// that the gaps would grow 20-fold a wake and pass the bound within
// seconds, with a change every 100 µs; after a second of it, a watcher
// that has caught up must get each of three changes, recorded one after
// the other, within a few seconds: a wake is charged for at most what it
// can find owed, which bounds the gap of these 10 watchers to about
// 2 × 10 × (wakeCost + (MaxPendingEvents+2) × sendCost) = 82 ms.
func TestTopicPacingBehind(t *testing.T) {
	const (
		watchers = 10
		rate     = 10_000_000 // events a second sent without a wake
		bound    = 5 * time.Second
	)
	tp := newTopic("ns")
	tp.watchers.Store(watchers)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(tp.broadcast)
	defer close(tp.done)
	stop := make(chan struct{})
	wg.Go(func() {
		prev := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Now()
			tp.sent.Add(int64(now.Sub(prev).Seconds() * rate))
			prev = now
			tp.put(fmt.Sprint("k", i%1000), "v", OpSet)
			time.Sleep(100 * time.Microsecond)
		}
	})
	defer close(stop)
	time.Sleep(time.Second)

	cur := tp.start()
	var buf []owed
	var changed <-chan struct{}
	for probe := range 3 {
		// Caught up: what comes next needs a wake.
		for buf, changed = tp.read(&cur, buf[:0]); len(buf) > 0; buf, changed = tp.read(&cur, buf[:0]) {
		}
		key := fmt.Sprint("probe", probe)
		put := time.Now()
		tp.put(key, "v", OpSet)
		deadline := time.NewTimer(bound)
	wait:
		for {
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("change %d not woken %v after it was recorded", probe, bound)
			}
			for buf, changed = tp.read(&cur, buf[:0]); len(buf) > 0; buf, changed = tp.read(&cur, buf[:0]) {
				for _, o := range buf {
					if o.ev.Key == key {
						break wait
					}
				}
			}
		}
		deadline.Stop()
		t.Logf("change %d woken %v after it was recorded", probe, time.Since(put))
	}
}
