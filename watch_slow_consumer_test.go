package opstate_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestWatchConverges is the convergence promise: three goroutines of the
// watching Store make random writes (randomWrites: Set, SetWithTTL, Delete,
// the conditional writes, now and then DeleteNamespace) to one namespace
// while a second process makes its own, and a consumer, deliberately slow,
// builds the namespace from the events (OpReset: List). Twice its backlog
// passes MaxPendingEvents and must be replaced by an OpReset: a burst of
// new keys is set before it starts reading (it re-reads the namespace amid
// the random writes), and another once they have stopped, while it does
// not read. Once the writes
// have stopped and the consumer has drained the channel (a marker set by
// plain SQL after every writer finished has reached it, and nothing comes
// after it), what it built must equal List.
func TestWatchConverges(t *testing.T) {
	path := dbPath(t)
	const ns = "conv"
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	db := sqlDB(t, path)
	ch := watch(t, s, ns)
	const burstKeys = opstate.MaxPendingEvents + 200
	burst := func(prefix string) { // 8 goroutines: their Sets share commits
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := g; i < burstKeys; i += 8 {
					if err := s.Set(ns, fmt.Sprint(prefix, i), "b"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}

	burst("early") // before the consumer reads

	child := childCommand(t, "watch-writer", watchChildDB+"="+path, watchChildNS+"="+ns, watchChildRandom+"=7,700")
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			if err := randomWrites(s, ns, rand.New(rand.NewPCG(uint64(w), 2)), 400, 300, fmt.Sprint("w", w)); err != nil {
				t.Error(err)
			}
		})
	}
	stopped := make(chan struct{})
	go func() {
		writers.Wait()
		if err := child.Wait(); err != nil {
			t.Errorf("child: %v\n%s", err, childOut.String())
		}
		close(stopped)
	}()

	built := map[string]string{}
	var events, resets int
	apply := func(ev opstate.Event) {
		events++
		switch ev.Op {
		case opstate.OpSet:
			built[ev.Key] = ev.Value
		case opstate.OpDelete, opstate.OpExpire:
			delete(built, ev.Key)
		case opstate.OpReset:
			resets++
			m, err := s.List(ns)
			if err != nil {
				t.Fatal(err)
			}
			built = m
		default:
			t.Errorf("event of unknown op %v", ev.Op)
		}
		time.Sleep(20 * time.Microsecond) // a slow consumer
	}
	for reading := true; reading; {
		select {
		case ev := <-ch:
			apply(ev)
		case <-stopped:
			reading = false
		}
	}
	if resets == 0 {
		t.Errorf("no OpReset after %d new keys were set before the consumer read: the backlog was not bounded", burstKeys)
	}
	before, during := resets, events
	burst("late") // while the consumer does not read
	burst("late")
	if _, err := db.Exec(`INSERT INTO operational_state VALUES (?, ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, ns, marker); err != nil {
		t.Fatal(err)
	}
	for built[marker] != "m" {
		apply(recv(t, ch, eventBound))
	}
	if resets == before {
		t.Errorf("no OpReset after %d new keys were set for a consumer not reading: the backlog was not bounded", burstKeys)
	}
	// Drained: nothing more comes.
	for quiet := false; !quiet; {
		select {
		case ev := <-ch:
			apply(ev)
		case <-time.After(20 * watchSync):
			quiet = true
		}
	}
	list, err := s.List(ns)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(built, list) {
		var diff []string
		for k, v := range list {
			if b, ok := built[k]; !ok || b != v {
				diff = append(diff, fmt.Sprintf("%s: built %q, %v; List %q", k, b, ok, v))
			}
		}
		for k, b := range built {
			if _, ok := list[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s: built %q; not in List", k, b))
			}
		}
		slices.Sort(diff)
		t.Errorf("state built from %d events differs from List(%q) in %d keys:\n%s", events, ns, len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
	}
	t.Logf("%d events (%d while the writers wrote), %d resets, %d keys", events, during, resets, len(list))
}

// TestWatchCoalesces checks that the events waiting for a consumer that
// does not read are coalesced per key, the latest winning: a thousand
// writes to each of two keys wait as one event each.
func TestWatchCoalesces(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1})
	ch := watch(t, s, "ns")
	for i := range 1000 {
		mustSet(t, s, "ns", "a", fmt.Sprint(i))
		mustSet(t, s, "ns", "b", fmt.Sprint(i))
	}
	if err := s.Delete("ns", "b"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "c", "x")
	mustSet(t, s, "ns", marker, "m")
	evs := untilSet(t, ch, marker, "m", eventBound)
	// One event may have been taken from the queue, and wait to be
	// received, before the others were queued.
	if len(evs) > 4 {
		t.Errorf("%d events for three keys: %s; want one each (and one sent before)", len(evs), eventsString(evs))
	}
	last := map[string]opstate.Event{}
	for _, ev := range evs {
		last[ev.Key] = ev
	}
	want := map[string]opstate.Event{
		"a": {Namespace: "ns", Key: "a", Op: opstate.OpSet, Value: "999"},
		"b": {Namespace: "ns", Key: "b", Op: opstate.OpDelete},
		"c": {Namespace: "ns", Key: "c", Op: opstate.OpSet, Value: "x"},
	}
	if !maps.Equal(last, want) {
		t.Errorf("events %s; want the last of a, b and c", eventsString(evs))
	}
}

// TestWatchSlowConsumer checks that a watcher that never reads blocks
// nobody and holds a bounded backlog. With one such watcher, 10,000 Sets
// of new keys and as many Gets complete, and another watcher of the
// namespace, reading, receives every one of them and no OpReset. When
// the stalled watcher finally reads, it receives the Sets of the batch it
// took before the backlog overflowed (the first keys, in order; at most
// WatchBatch of them, how many depending on how many Sets had committed
// when its goroutine first ran), one OpReset in place of the rest, and at
// most MaxPendingEvents events after it, from which, applying the OpReset
// as a List, it builds what List holds.
func TestWatchSlowConsumer(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1})
	stalled := watch(t, s, "ns")
	live := watch(t, s, "ns")
	const n = 10_000
	got := map[string]string{}
	var liveResets int
	received := make(chan struct{})
	go func() {
		defer close(received)
		for ev := range live {
			switch {
			case ev.Key == marker:
				return
			case ev.Op == opstate.OpSet:
				got[ev.Key] = ev.Value
			default:
				liveResets++
			}
		}
	}()
	within(t, 60*time.Second, "10,000 Sets and Gets with a watcher that does not read", func() {
		for i := range n {
			if err := s.Set("ns", fmt.Sprint("k", i), fmt.Sprint(i)); err != nil {
				t.Error(err)
				return
			}
			if v, err := s.Get("ns", fmt.Sprint("k", i/2)); err != nil || v != fmt.Sprint(i/2) {
				t.Errorf("Get(ns, k%d) = %q, %v; want %d", i/2, v, err, i/2)
				return
			}
		}
	})
	mustSet(t, s, "ns", marker, "m")
	within(t, eventBound, "the reading watcher's receiving every Set", func() { <-received })
	if len(got) != n || liveResets != 0 {
		t.Errorf("the reading watcher received %d keys' Sets and %d other events; want all %d and none", len(got), liveResets, n)
	}
	for i := range n {
		if k := fmt.Sprint("k", i); got[k] != fmt.Sprint(i) {
			t.Errorf("the reading watcher received %s = %q; want %d", k, got[k], i)
			break
		}
	}

	evs := untilSet(t, stalled, marker, "m", eventBound)
	reset := slices.IndexFunc(evs, func(ev opstate.Event) bool { return ev.Op == opstate.OpReset })
	if reset < 0 {
		t.Fatalf("%d events and no OpReset for %d keys pending", len(evs), n)
	}
	if reset > opstate.WatchBatch {
		t.Errorf("%d events before the OpReset; want at most one batch, WatchBatch = %d", reset, opstate.WatchBatch)
	}
	for i, ev := range evs[:reset] {
		if want := (opstate.Event{Namespace: "ns", Key: fmt.Sprint("k", i), Op: opstate.OpSet, Value: fmt.Sprint(i)}); ev != want {
			t.Errorf("event %d before the OpReset: %+v; want %+v, the first keys' Sets in order", i, ev, want)
			break
		}
	}
	after := evs[reset+1:]
	if slices.ContainsFunc(after, func(ev opstate.Event) bool { return ev.Op == opstate.OpReset }) {
		t.Errorf("more than one OpReset")
	}
	if len(after)+1 > opstate.MaxPendingEvents { // the marker was pending too
		t.Errorf("%d events pending after the OpReset; want at most MaxPendingEvents = %d", len(after)+1, opstate.MaxPendingEvents)
	}
	built, err := s.List("ns") // at the OpReset: nothing was written since
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range after {
		built[ev.Key] = ev.Value
	}
	built[marker] = "m"
	list, err := s.List("ns")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(built, list) {
		t.Errorf("the stalled watcher built %d keys; List holds %d", len(built), len(list))
	}
	t.Logf("stalled watcher: %d events before the OpReset, %d after", reset, len(after))
}
