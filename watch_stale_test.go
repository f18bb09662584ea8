package opstate

import (
	"sync/atomic"
	"testing"
)

// TestWatcherStaleQueue checks how a watcher's topic orders OpStale
// against OpReset for a consumer that is slow: a stream that went down
// and came back before the consumer looked is one OpReset (it is fresh
// again); an OpReset of events lost (the queue's bound) leaves a pending
// OpStale due after it (still down); key events wait behind both.
func TestWatcherStaleQueue(t *testing.T) {
	ev := func(op Op, key string) Event { return Event{Namespace: "ns", Key: key, Op: op} }
	for _, tc := range []struct {
		name string
		do   func(f *feed, w *watcher)
		want []Event
	}{
		{"down", func(f *feed, w *watcher) { f.staleAllLocked() }, []Event{ev(OpStale, "")}},
		{"down then back", func(f *feed, w *watcher) { f.staleAllLocked(); f.freshAllLocked() }, []Event{ev(OpReset, "")}},
		{"back then down", func(f *feed, w *watcher) { f.freshAllLocked(); f.staleAllLocked() }, []Event{ev(OpReset, ""), ev(OpStale, "")}},
		{"down, events lost", func(f *feed, w *watcher) { f.staleAllLocked(); f.resetAllLocked() }, []Event{ev(OpReset, ""), ev(OpStale, "")}},
		{"down with a key queued", func(f *feed, w *watcher) {
			f.sendLocked(ev(OpSet, "k"))
			f.staleAllLocked()
		}, []Event{ev(OpStale, ""), ev(OpSet, "k")}},
		{"back drops keys queued before", func(f *feed, w *watcher) {
			f.staleAllLocked()
			f.sendLocked(ev(OpSet, "k"))
			f.freshAllLocked()
			f.sendLocked(ev(OpDelete, "j"))
		}, []Event{ev(OpReset, ""), ev(OpDelete, "j")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f feed
			w := &watcher{resets: new(atomic.Uint64)}
			f.add("ns", w)
			f.order.lock()
			tc.do(&f, w)
			f.order.unlock()
			var got []Event
			for {
				batch, _ := w.t.read(&w.cur, nil)
				if len(batch) == 0 {
					break
				}
				for _, o := range batch {
					got = append(got, o.ev)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("delivered %v; want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d = %+v; want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestStaleOnSQLite checks that a Store on a file is never stale, open or
// closed.
func TestStaleOnSQLite(t *testing.T) {
	s, err := NewStore(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	if s.Stale() {
		t.Error("Stale() = true on an open SQLite Store")
	}
	s.Close()
	if s.Stale() {
		t.Error("Stale() = true on a closed Store")
	}
}
