package opstate_test

import (
	"context"
	"errors"
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
	// The poller may have gone to sleep before the hook was set (20
	// checks of 1ms, while other opened): a read wakes it, and it
	// decides again.
	if _, err := s.Get("flags", "nothing"); err != nil {
		t.Fatal(err)
	}
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

// TestLookupResumingDuringClose checks that a read that wakes the
// sleeping poller while Close begins never serves the cache unchecked: its
// check for others' writes cannot run once Close has begun, and then the
// read must fail with ErrClosed (or read SQLite), not return the value
// another Store replaced while the poller slept.
func TestLookupResumingDuringClose(t *testing.T) {
	path := dbPath(t)
	s, err := opstate.Open(path, opstate.Options{SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	other := mustOpen(t, path, opstate.Options{SyncInterval: -1})
	mustSet(t, s, "flags", "k", "old")
	wantGet(t, s, "flags", "k", "old", true) // cached
	waitDormant(t, s)
	mustSet(t, other, "flags", "k", "new")

	releaseClose := s.HoldClose()
	releaseResume := s.HoldResume()
	type result struct {
		v   string
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, ok, err := s.Lookup("flags", "k") // sees the poller asleep, waits in resume
		done <- result{v, ok, err}
	}()
	time.Sleep(50 * time.Millisecond) // for the Lookup to reach resume
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !s.Closing() {
		time.Sleep(time.Millisecond)
	}
	releaseResume()
	r := <-done
	releaseClose()
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	if r.err == nil && r.v != "new" {
		t.Errorf("Lookup during Close = %q, %v, nil; want %q or ErrClosed", r.v, r.ok, "new")
	}
	if r.err != nil && !errors.Is(r.err, opstate.ErrClosed) {
		t.Errorf("Lookup during Close = %v; want ErrClosed", r.err)
	}
}
