package opstate_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// Bounds of TestStalledWatcherMemory, per watcher, with a margin over
// Watch's documentation for what else the process allocates meanwhile:
// a watcher holds its goroutine, its channel and a batch of at most 64
// events, and its share of the namespace's MaxPendingEvents changes,
// held once for all its watchers.
const (
	stalledBound  = 32 << 10
	caughtUpBound = 16 << 10
)

// TestStalledWatcherMemory measures, with runtime.MemStats, what watchers
// whose consumers do not receive hold while writes flow: each must hold
// at most stalledBound with MaxPendingEvents events waiting for it, and,
// once its consumer has received them all, at most caughtUpBound more
// than when it was idle. The keys and values are the test's own, kept
// alive throughout, so that only what the watchers add counts.
func TestStalledWatcherMemory(t *testing.T) {
	const watchers = 100
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1, CacheBytes: -1})
	// One key more than MaxPendingEvents: each watcher's goroutine takes
	// the first event it is woken for, and waits to send it; the others
	// fill the namespace's changes, exactly.
	n := opstate.MaxPendingEvents + 1
	keys, values := make([]string, n), make([]string, n)
	for i := range n {
		keys[i], values[i] = fmt.Sprintf("key-%05d", i), fmt.Sprintf("value-%05d", i)
	}
	// Whatever the Store keeps per key written, it keeps before the
	// watchers come: the keys are set once first, and then again.
	setAll := func() {
		var wg sync.WaitGroup
		const writers = 8
		for g := range writers {
			wg.Go(func() {
				for i := g; i < n; i += writers {
					mustSet(t, s, "ns", keys[i], values[i])
				}
			})
		}
		wg.Wait()
	}
	setAll()

	before := heapAndStacks()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chs := make([]<-chan opstate.Event, watchers)
	for i := range chs {
		ch, err := s.Watch(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		chs[i] = ch
	}
	idle := heapAndStacks()

	setAll()
	stalled := heapAndStacks()
	if per := (stalled - before) / watchers; per > stalledBound {
		t.Errorf("a stalled watcher with %d events pending holds %d bytes; want at most %d", n, per, stalledBound)
	}

	timeout := time.NewTimer(eventBound)
	defer timeout.Stop()
	for i, ch := range chs {
		for got := 0; got < n; got++ {
			select {
			case ev := <-ch:
				if ev.Op != opstate.OpSet {
					t.Fatalf("watcher %d: event %d is %v; want the %d Sets and nothing else", i, got, ev, n)
				}
			case <-timeout.C:
				t.Fatalf("watcher %d received %d events within %v; want %d", i, got, eventBound, n)
			}
		}
	}
	caughtUp := heapAndStacks()
	if per := (max(caughtUp, idle) - idle) / watchers; per > caughtUpBound {
		t.Errorf("a watcher that received its %d pending events holds %d bytes more than when idle; want at most %d", n, per, caughtUpBound)
	}
	t.Logf("per watcher: %d bytes idle, %d stalled, %d caught up",
		(idle-before)/watchers, (stalled-before)/watchers, (caughtUp-before)/watchers)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(values)
}

// heapAndStacks returns the bytes of live heap objects and goroutine stacks,
// after a garbage collection.
func heapAndStacks() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
