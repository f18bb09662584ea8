package opstate_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// watchSync is the SyncInterval of the Stores of the watch tests, none of
// which is about its default: foreign writes reach watchers within a few
// milliseconds.
const watchSync = 5 * time.Millisecond

// foreignBound is how soon a watcher must receive an event for a write
// committed by anyone else.
const foreignBound = watchSync + syncSlack

// eventBound is how long a test waits for an event, a closed channel or a
// call that must come before it concludes that it never will: a hang, a
// deadlock, a lost event. Far above any delay a working Store shows.
const eventBound = 10 * time.Second

// watch opens a watch of ns on s that ends with the test.
func watch(t testing.TB, s *opstate.Store, ns string) <-chan opstate.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Watch(ctx, ns)
	if err != nil {
		t.Fatalf("Watch(%q) = %v", ns, err)
	}
	return ch
}

// recv returns the next event of ch; it fails the test if ch is closed or
// nothing comes within d.
func recv(t testing.TB, ch <-chan opstate.Event, d time.Duration) opstate.Event {
	t.Helper()
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed; want an event")
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event within %v", d)
	}
	panic("unreachable")
}

// untilSet returns the events ch sends before the OpSet of key to value,
// which must come within d.
func untilSet(t testing.TB, ch <-chan opstate.Event, key, value string, d time.Duration) []opstate.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	var evs []opstate.Event
	for {
		ev := recv(t, ch, time.Until(deadline))
		if ev.Op == opstate.OpSet && ev.Key == key && ev.Value == value {
			return evs
		}
		evs = append(evs, ev)
	}
}

// waitClosed reads ch until it is closed, which must happen within d, and
// returns how many events it read.
func waitClosed(t testing.TB, ch <-chan opstate.Event, d time.Duration) int {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
		case <-timer.C:
			t.Fatalf("watch channel still open %v later (%d events read)", d, n)
		}
	}
}

// deliverers returns how many goroutines started by Store.Watch are
// running.
func deliverers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by github.com/d8da9184/opstate.(*Store).Watch")
}

// wantDeliverers waits up to eventBound for the number of Watch's
// goroutines to come down to want.
func wantDeliverers(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(eventBound)
	for {
		n := deliverers()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of Watch running %v later; want %d", n, eventBound, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// within runs f and fails the test if it has not returned after d: a
// deadlock, which it reports with every goroutine's stack.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s has not returned after %v:\n%s", what, d, buf)
	}
}

// eventsString renders evs for a message.
func eventsString(evs []opstate.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s/%q", ev.Op, ev.Namespace, ev.Key)
		if ev.Op == opstate.OpSet {
			fmt.Fprintf(&b, "=%q", ev.Value)
		}
	}
	return "[" + b.String() + "]"
}

// byKey sorts evs by key, keeping the order of each key's events: what a
// watcher promises is the order per key, not across keys.
func byKey(evs []opstate.Event) []opstate.Event {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b opstate.Event) int { return strings.Compare(a.Key, b.Key) })
	return evs
}

// marker is the key the tests set to tell that the events before it have
// all been received.
const marker = "~marker"
