package opstate

import (
	"context"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTopicConcurrent runs the feed as Watch does — a broadcaster, a
// deliver goroutine a watcher — against writers that record sets,
// deletes, resets and outages under servedOrder, and consumers that read
// at different paces, each building the namespace from its events
// (re-read on every OpReset). It checks that a key's values arrive in the
// order they were written, and that every consumer, once the writers
// stop, receives the last write and holds the truth: no wake lost, no
// change skipped without an OpReset.
func TestTopicConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keys    int
		writes  int
		markers int // in 1000 writes, how many record an OpReset, an OpStale or an end of one
	}{
		{"few keys", 8, 20000, 6},
		{"past the bound", MaxPendingEvents + 500, 40000, 6},
		{"past the bound, no resets", 2 * MaxPendingEvents, 60000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f feed
			truth := map[string]string{} // under f.order
			life, end := context.WithCancel(context.Background())
			defer end()
			var wg sync.WaitGroup
			const watchers = 6
			chans := make([]chan Event, watchers)
			resets := make([]atomic.Uint64, watchers)
			for i := range chans {
				w := &watcher{ch: make(chan Event), resets: &resets[i]}
				if f.add("ns", w) {
					wg.Go(w.t.broadcast)
				}
				chans[i] = w.ch
				wg.Go(func() {
					defer close(w.ch)
					defer f.remove(w)
					w.deliver(life, life)
				})
			}
			var counter atomic.Int64
			write := func(rng *rand.Rand) {
				f.order.lock()
				defer f.order.unlock()
				k := "k" + strconv.Itoa(rng.IntN(tc.keys))
				switch x := rng.IntN(1000); {
				case x >= tc.markers && x < 6:
					fallthrough
				default:
					v := strconv.FormatInt(counter.Add(1), 10)
					truth[k] = v
					f.sendLocked(Event{Namespace: "ns", Key: k, Op: OpSet, Value: v})
				case x < 2:
					clear(truth)
					f.sendLocked(Event{Namespace: "ns", Op: OpReset})
				case x < 4:
					f.staleAllLocked()
				case x < 6:
					f.freshAllLocked()
				case x >= 6 && x < 200:
					delete(truth, k)
					f.sendLocked(Event{Namespace: "ns", Key: k, Op: OpDelete})
				}
			}
			reread := func() map[string]string {
				f.order.lock()
				defer f.order.unlock()
				return maps.Clone(truth)
			}
			errs := make(chan string, watchers)
			var consumers sync.WaitGroup
			for i, ch := range chans {
				consumers.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(i), 7))
					state, last := map[string]string{}, map[string]int64{}
					for ev := range ch {
						switch ev.Op {
						case OpReset:
							state = reread()
							clear(last)
						case OpDelete:
							delete(state, ev.Key)
						case OpSet:
							n, _ := strconv.ParseInt(ev.Value, 10, 64)
							if n <= last[ev.Key] {
								errs <- "watcher " + strconv.Itoa(i) + ": " + ev.Key + "=" + ev.Value + " after " + strconv.FormatInt(last[ev.Key], 10)
								return
							}
							last[ev.Key] = n
							state[ev.Key] = ev.Value
						}
						if _, ok := state["end"]; ok {
							if want := reread(); !maps.Equal(state, want) {
								errs <- "watcher " + strconv.Itoa(i) + ": built " + strconv.Itoa(len(state)) + " keys; truth has " + strconv.Itoa(len(want))
							}
							return
						}
						switch {
						case i == watchers-1:
							// Stalls now and then, long enough to fall
							// behind by more than MaxPendingEvents keys.
							if rng.IntN(2000) == 0 {
								time.Sleep(20 * time.Millisecond)
							}
						case i > 0 && rng.IntN(1<<uint(i)) == 0:
							time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
						}
					}
				})
			}
			var writers sync.WaitGroup
			for j := range 2 {
				writers.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(j), 11))
					for range tc.writes / 2 {
						write(rng)
					}
				})
			}
			writers.Wait()
			f.order.lock()
			v := strconv.FormatInt(counter.Add(1), 10)
			truth["end"] = v
			f.sendLocked(Event{Namespace: "ns", Key: "end", Op: OpSet, Value: v})
			f.order.unlock()
			done := make(chan struct{})
			go func() { consumers.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("a consumer has not received the last write 20s after it")
			}
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			for i := range resets {
				t.Logf("watcher %d: %d resets", i, resets[i].Load())
			}
			end()
			for _, ch := range chans {
				for range ch {
				}
			}
			wg.Wait()
			if f.byNS["ns"] != nil || f.n.Load() != 0 {
				t.Errorf("after every watcher left: topic %v, %d watchers counted", f.byNS["ns"] != nil, f.n.Load())
			}
		})
	}
}
