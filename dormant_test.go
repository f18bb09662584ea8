package opstate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// waitDormant waits until s's poller sleeps.
func waitDormant(t *testing.T, s *opstate.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Dormant() {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not go to sleep within 10s of no reads")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDormantPoller checks that a Store nobody reads stops checking for
// others' writes, and that its next read still serves a write another
// Store committed meanwhile, at once: the read checks first.
func TestDormantPoller(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{SyncInterval: time.Millisecond})
	other := mustOpen(t, path, opstate.Options{SyncInterval: -1})
	mustSet(t, s, "flags", "k", "old")
	wantGet(t, s, "flags", "k", "old", true) // cached
	for round := range 3 {
		waitDormant(t, s)
		want := []string{"new", "newer", "newest"}[round]
		mustSet(t, other, "flags", "k", want)
		wantGet(t, s, "flags", "k", want, true)
		if s.Dormant() {
			t.Fatalf("round %d: still dormant after a read", round)
		}
	}
}

// TestDormantWatch checks that a watcher keeps the poller awake, and that
// Watch on a Store whose poller sleeps wakes it: others' writes reach the
// watcher.
func TestDormantWatch(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{SyncInterval: time.Millisecond})
	other := mustOpen(t, path, opstate.Options{SyncInterval: -1})
	waitDormant(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, err := s.Watch(ctx, "flags")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"a", "b"} {
		if i == 1 {
			time.Sleep(50 * time.Millisecond) // more than dormantAfter checks
			if s.Dormant() {
				t.Fatal("the poller sleeps while a watcher watches")
			}
		}
		mustSet(t, other, "flags", "k", v)
		select {
		case ev := <-events:
			if ev.Op != opstate.OpSet || ev.Key != "k" || ev.Value != v {
				t.Fatalf("event %+v; want set k %q", ev, v)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for another Store's write of %q within 10s", v)
		}
	}
}

// TestWatchRacingDormancy checks that a Watch that begins while the poller
// is deciding to sleep (it found no reads and no watcher, and has not yet
// marked itself dormant) still gets others' writes: the poller must not
// sleep with a watcher registered, nor Watch miss the poller's sleep.
func TestWatchRacingDormancy(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{SyncInterval: time.Millisecond})
	other := mustOpen(t, path, opstate.Options{SyncInterval: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watching := make(chan (<-chan opstate.Event), 1)
	var once sync.Once
	s.SetBeforeDormant(func() {
		once.Do(func() {
			ch, err := s.Watch(ctx, "flags")
			if err != nil {
				t.Error(err)
			}
			watching <- ch
		})
	})
	var events <-chan opstate.Event
	select {
	case events = <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the poller did not decide to sleep within 10s of no reads")
	}
	if events == nil {
		t.FailNow()
	}
	mustSet(t, other, "flags", "k", "v")
	select {
	case ev := <-events:
		if ev.Op != opstate.OpSet || ev.Key != "k" || ev.Value != "v" {
			t.Fatalf("event %+v; want set k %q", ev, "v")
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("no event within 2s for another Store's write; poller dormant: %v", s.Dormant())
	}
}
