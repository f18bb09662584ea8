package storetest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testWatch tests Watch with two Stores on one database: the watcher's
// and another.
func testWatch(t *testing.T, c Config) {
	t.Run("Events", func(t *testing.T) { testWatchEvents(t, c) })
	t.Run("Convergence", func(t *testing.T) { testWatchConvergence(t, c) })
}

// watch opens a watch of ns on s that ends with the test.
func watch(t *testing.T, s *opstate.Store, ns string) <-chan opstate.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Watch(ctx, ns)
	if err != nil {
		t.Fatalf("Watch(%q) = %v", ns, err)
	}
	return ch
}

// wantEvent checks that the next event of ch, within d, is want.
func wantEvent(t *testing.T, ch <-chan opstate.Event, want opstate.Event, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("watch closed; want event %+v", want)
		}
		if got != want {
			t.Fatalf("event %+v; want %+v", got, want)
		}
	case <-timer.C:
		t.Fatalf("no event within %v; want %+v", d, want)
	}
}

// testWatchEvents: a watcher on Store A receives the events of A's writes
// and, within Lag, those of B's, each before the next write, and nothing
// of another namespace; a sweep's delete, A's or B's, is an OpExpire. The
// channel is closed when the watch's context ends.
func testWatchEvents(t *testing.T, c Config) {
	o := c.New(t)
	a, b := open(t, o, realTime()), open(t, o, realTime())
	ch := watch(t, a, "w")
	ev := func(key string, op opstate.Op, value string) opstate.Event {
		return opstate.Event{Namespace: "w", Key: key, Op: op, Value: value}
	}
	steps := []struct {
		who  *opstate.Store
		do   func(s *opstate.Store) error
		want opstate.Event
	}{
		{a, func(s *opstate.Store) error { return s.Set("w", "ka", "a1") }, ev("ka", opstate.OpSet, "a1")},
		{b, func(s *opstate.Store) error { return s.Set("w", "kb", "b1") }, ev("kb", opstate.OpSet, "b1")},
		{b, func(s *opstate.Store) error { return s.Set("w", "ka", "b2") }, ev("ka", opstate.OpSet, "b2")},
		{a, func(s *opstate.Store) error { return s.Set("other", "ka", "x") }, opstate.Event{}}, // none
		{b, func(s *opstate.Store) error { return s.Set("other", "kb", "x") }, opstate.Event{}},
		{b, func(s *opstate.Store) error { return s.Delete("w", "kb") }, ev("kb", opstate.OpDelete, "")},
		{b, func(s *opstate.Store) error { return s.SetWithTTL("w", "kt", "", time.Hour) }, ev("kt", opstate.OpSet, "")},
		{a, func(s *opstate.Store) error { return s.Delete("w", "ka") }, ev("ka", opstate.OpDelete, "")},
		{a, func(s *opstate.Store) error { return s.SetWithTTL("w", "xa", "a", shortTTL) }, ev("xa", opstate.OpSet, "a")},
		{a, func(s *opstate.Store) error { return sweep(t, s, "w", "xa") }, ev("xa", opstate.OpExpire, "")},
		{b, func(s *opstate.Store) error { return s.SetWithTTL("w", "xb", "b", shortTTL) }, ev("xb", opstate.OpSet, "b")},
		{b, func(s *opstate.Store) error { return sweep(t, s, "w", "xb") }, ev("xb", opstate.OpExpire, "")},
		{a, func(s *opstate.Store) error { return s.DeleteNamespace("w") }, ev("", opstate.OpReset, "")},
	}
	for i, st := range steps {
		if err := st.do(st.who); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if st.want == (opstate.Event{}) {
			continue // the next event is the next step's
		}
		wantEvent(t, ch, st.want, c.Lag)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := a.Watch(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	wantClosed(t, ch, "after its context ended")
}

// wantClosed checks that ch is closed, soon, without an event before.
func wantClosed(t *testing.T, ch <-chan opstate.Event, when string) {
	t.Helper()
	timer := time.NewTimer(settleBound)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Errorf("watch %s: event %+v; want the channel closed", when, ev)
		}
	case <-timer.C:
		t.Errorf("watch %s: not closed within %v", when, settleBound)
	}
}

// sweep waits until key of ns, set to expire in shortTTL, has expired, and
// deletes it with s.DeleteExpired, which must find it alone.
func sweep(t *testing.T, s *opstate.Store, ns, key string) error {
	t.Helper()
	listedWithout(t, s, ns, key)
	if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
		return fmt.Errorf("DeleteExpired = %d, %v; want 1, nil", n, err)
	}
	return nil
}

// convKey is key i of testWatchConvergence; key 0 is too long for a
// change notification to name (9000 bytes).
func convKey(i int) string {
	if i == 0 {
		return strings.Repeat("k", 9000)
	}
	return fmt.Sprint("k", i)
}

// randomWrites makes n random writes, as writer w, to keys convKey(0) to
// convKey(keys-1) of ns: Set, Delete, SetWithTTL (an hour: nothing
// expires during the test), SetIfAbsent, CompareAndSwap and
// CompareAndDelete of the value just read, DeleteNamespace, and writes to
// another namespace. Each value is written once ("w-i").
func randomWrites(s *opstate.Store, ns string, w, n, keys int) error {
	rng := rand.New(rand.NewPCG(uint64(w), 11))
	for i := range n {
		k := convKey(rng.IntN(keys))
		v := fmt.Sprintf("%d-%d", w, i)
		var err error
		switch r := rng.IntN(100); {
		case r < 40:
			err = s.Set(ns, k, v)
		case r < 55:
			err = s.Delete(ns, k)
		case r < 65:
			err = s.SetWithTTL(ns, k, v, time.Hour)
		case r < 75:
			_, err = s.SetIfAbsent(ns, k, v)
		case r < 85:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndSwap(ns, k, old, v)
			}
		case r < 95:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndDelete(ns, k, old)
			}
		case r < 97:
			err = s.DeleteNamespace(ns)
		default:
			err = s.Set(ns+"-other", k, v)
		}
		if err != nil {
			return fmt.Errorf("write %d to %.40q: %w", i, k, err)
		}
	}
	return nil
}

// testWatchConvergence: two Stores write random changes to the keys of a
// namespace at once, and sweep keys that expired; a state kept from the
// events of a watcher on one of them (OpSet stores the value, OpDelete
// and OpExpire remove the key, OpReset re-reads the namespace with List)
// equals List within Lag of the last write. A sweep's deletes arrive as
// OpExpire.
func testWatchConvergence(t *testing.T, c Config) {
	const ns, keys, writes = "conv", 12, 150
	o := c.New(t)
	a, b := open(t, o, realTime()), open(t, o, realTime())
	ch := watch(t, a, ns)

	state := map[string]string{}
	expired := map[string]bool{} // keys an OpExpire was received for
	apply := func(ev opstate.Event) {
		if ev.Namespace != ns {
			t.Errorf("event of namespace %q on a watch of %q", ev.Namespace, ns)
		}
		switch ev.Op {
		case opstate.OpSet:
			state[ev.Key] = ev.Value
		case opstate.OpDelete:
			delete(state, ev.Key)
		case opstate.OpExpire:
			delete(state, ev.Key)
			expired[ev.Key] = true
		case opstate.OpReset:
			m, err := a.List(ns)
			if err != nil {
				t.Errorf("List on OpReset: %v", err)
			}
			state = m
		default:
			t.Errorf("event %+v of unknown op", ev)
		}
	}
	// Events are consumed while the writers run, as a watcher would.
	done := make(chan struct{})
	var consumed sync.WaitGroup
	consumed.Go(func() {
		for {
			select {
			case ev := <-ch:
				apply(ev)
			case <-done:
				return
			}
		}
	})

	var wg sync.WaitGroup
	for w, s := range []*opstate.Store{a, b} {
		wg.Go(func() {
			if err := randomWrites(s, ns, w, writes, keys); err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	// Keys that expire, swept by B: OpExpire on A for its own key and B's.
	mustSetTTL(t, a, ns, "xa", "v", shortTTL)
	mustSetTTL(t, b, ns, "xb", "v", shortTTL)
	listedWithout(t, b, ns, "xa", "xb")
	if n, err := b.DeleteExpired(context.Background()); n != 2 || err != nil {
		t.Fatalf("DeleteExpired = %d, %v; want 2, nil", n, err)
	}
	last := time.Now()
	want, err := b.List(ns)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, a, ns, want)

	close(done)
	consumed.Wait()
	timer := time.NewTimer(time.Until(last.Add(c.Lag)))
	defer timer.Stop()
	for !maps.Equal(state, want) || !expired["xa"] || !expired["xb"] {
		select {
		case ev := <-ch:
			apply(ev)
		case <-timer.C:
			t.Fatalf("within Lag (%v) of the last write, the state kept from events is %s, OpExpire seen for xa %v, xb %v; want List's %s and both",
				c.Lag, short(state), expired["xa"], expired["xb"], short(want))
		}
	}
	// No event comes later to undo it.
	calm := time.NewTimer(min(c.Lag, 100*time.Millisecond))
	defer calm.Stop()
quiet:
	for {
		select {
		case ev := <-ch:
			apply(ev)
			if !maps.Equal(state, want) {
				t.Fatalf("event %+v after convergence: state %s; want %s", ev, short(state), short(want))
			}
		case <-calm.C:
			break quiet
		}
	}
	// Nor does either Store's cache hold anything else, after writes of
	// its own and the other's to the same keys.
	for i := range keys {
		k := convKey(i)
		v, ok := want[k]
		for name, s := range map[string]*opstate.Store{"A": a, "B": b} {
			err := poll(time.Until(last.Add(c.Lag)), func() error {
				if got, gotOK, err := s.Lookup(ns, k); got != v || gotOK != ok || err != nil {
					return fmt.Errorf("Lookup(%.40q) = %q, %v, %v; want %q, %v, nil", k, got, gotOK, err, v, ok)
				}
				return nil
			})
			if err != nil {
				t.Errorf("Store %s, within Lag (%v) of the last write: %v", name, c.Lag, err)
			}
		}
	}
}
