package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestWatchLifecycle checks when a watch ends: its channel is closed, and
// its goroutine gone, once its ctx is cancelled, and once the Store is
// closed, even with events pending for a consumer that is not reading.
// Watch after Close returns ErrClosed, of an empty namespace ErrEmptyName,
// and with a ctx already ended either ctx's error or a channel that is
// closed.
func TestWatchLifecycle(t *testing.T) {
	t.Run("ctx cancelled", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: watchSync})
		before := deliverers()
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := s.Watch(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, s, "ns", "k", "v")
		if ev := recv(t, ch, eventBound); ev.Key != "k" {
			t.Errorf("event %s; want the Set of k", eventsString([]opstate.Event{ev}))
		}
		for i := range 100 {
			mustSet(t, s, "ns", "k", fmt.Sprint(i)) // pending when ctx ends
		}
		cancel()
		waitClosed(t, ch, eventBound)
		wantDeliverers(t, before)
		mustSet(t, s, "ns", "k", "after") // a write with no watcher left
	})
	t.Run("Close with events pending", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: watchSync})
		before := deliverers()
		ch := watch(t, s, "ns")
		for i := range 100 {
			mustSet(t, s, "ns", fmt.Sprint("k", i), "v")
		}
		within(t, eventBound, "Close with a watcher not reading", func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		if n := waitClosed(t, ch, eventBound); n > 1 {
			t.Errorf("%d events after Close returned; want at most the one already taken", n)
		}
		wantDeliverers(t, before)
	})
	t.Run("Watch after Close", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"ns", ""} {
			if ch, err := s.Watch(context.Background(), ns); !errors.Is(err, opstate.ErrClosed) || ch != nil {
				t.Errorf("Watch(%q) after Close = %v, %v; want nil, ErrClosed", ns, ch, err)
			}
		}
	})
	t.Run("empty namespace", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		if ch, err := s.Watch(context.Background(), ""); !errors.Is(err, opstate.ErrEmptyName) || ch != nil {
			t.Errorf(`Watch("") = %v, %v; want nil, ErrEmptyName`, ch, err)
		}
	})
	t.Run("ctx already ended", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), opstate.Options{})
		before := deliverers()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ch, err := s.Watch(ctx, "ns")
		switch {
		case err != nil && (!errors.Is(err, context.Canceled) || ch != nil):
			t.Errorf("Watch with an ended ctx = %v, %v; want nil, context.Canceled, or a closed channel", ch, err)
		case err == nil:
			mustSet(t, s, "ns", "k", "v")
			waitClosed(t, ch, eventBound)
		}
		wantDeliverers(t, before)
	})
}

// TestWatchCloseRaces opens and cancels many watches at once while this
// Store writes (with expiring keys, so that the background sweeper deletes
// and sends), plain SQL on another connection writes many keys of the
// watched namespaces (so that the foreign sync reads and sends), and the
// Store closes in the middle of it, round after round, under -race: Close
// must return, every channel must be closed, no goroutine of Watch may be
// left (and TestMain's leak check sees none of the Store's), and nothing
// may panic (a send on a closed channel).
func TestWatchCloseRaces(t *testing.T) {
	before := deliverers()
	for round := range 8 {
		path := dbPath(t)
		s, err := opstate.Open(path, opstate.Options{SyncInterval: time.Millisecond, SweepInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		db := sqlDB(t, path)
		ns := func(i int) string { return fmt.Sprint("ns", i%8) }
		var closed atomic.Bool
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					var err error
					if i%3 == 0 {
						err = s.SetWithTTL(ns(i+w), fmt.Sprint("t", i%50), "v", time.Millisecond)
					} else {
						err = s.Set(ns(i+w), fmt.Sprint("k", i%50), fmt.Sprint(i))
					}
					if errors.Is(err, opstate.ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					time.Sleep(100 * time.Microsecond) // leave the write lock to the other connection too
				}
			})
		}
		wg.Go(func() {
			for i := 0; !closed.Load(); i++ {
				// 400 keys, 50 of each namespace: below the count past
				// which a namespace is dropped whole, so each is read.
				q := `WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 399)
					INSERT INTO operational_state (namespace, key, value, updated_at)
					SELECT 'ns' || (x % 8), 'f' || x, ?, '2026-03-07T10:00:00.000Z' FROM n WHERE true
					ON CONFLICT DO UPDATE SET value = excluded.value`
				if _, err := db.Exec(q, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond) // leave the Store the write lock most of the time
			}
		})
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					ctx, cancel := context.WithCancel(context.Background())
					ch, err := s.Watch(ctx, ns(i+w))
					if errors.Is(err, opstate.ErrClosed) {
						cancel()
						return
					}
					if err != nil {
						t.Error(err)
						cancel()
						return
					}
					for range i % 5 {
						if _, ok := <-ch; !ok {
							break
						}
					}
					if i%10 != 9 {
						cancel() // the others stay open until Close
					}
					drainUntilClosed(t, ch, &closed)
					cancel()
				}
			})
		}
		time.Sleep(time.Duration(20+round*5) * time.Millisecond)
		within(t, eventBound, "Close amid watches, writes, sweeps and foreign writes", func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		closed.Store(true)
		within(t, eventBound, "the round's goroutines", wg.Wait)
		db.Close()
	}
	wantDeliverers(t, before)
}

// drainUntilClosed reads ch until it is closed, which it must be within
// eventBound of closed being set (the Store's Close returned).
func drainUntilClosed(t *testing.T, ch <-chan opstate.Event, closed *atomic.Bool) {
	var since time.Time
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(time.Millisecond):
			if !closed.Load() {
				continue
			}
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) > eventBound {
				t.Error("watch channel still open after Close returned")
				return
			}
		}
	}
}

// TestWatchTopicTurnover has two goroutines watch one namespace, each
// round with a new Watch that it ends once it has received a Set it made
// after Watch returned, so that the namespace's last watcher leaves and a
// new one arrives again and again, now sharing a topic and now making a
// new one while the old one's broadcaster stops: every watch must receive
// its Set (a wake lost with the old topic would leave it waiting), and
// once all have ended, no goroutine of Watch, the broadcasters included,
// may be left.
func TestWatchTopicTurnover(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: -1, SweepInterval: -1})
	before := deliverers()
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for round := range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				ch, err := s.Watch(ctx, "ns")
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				key, value := fmt.Sprint("g", g), fmt.Sprint(round)
				if err := s.Set("ns", key, value); err != nil {
					t.Error(err)
					cancel()
					return
				}
				timer := time.NewTimer(eventBound)
			wait:
				for {
					select {
					case ev := <-ch:
						if ev.Key == key && ev.Value == value {
							break wait
						}
					case <-timer.C:
						t.Errorf("goroutine %d, round %d: the Set not received within %v", g, round, eventBound)
						cancel()
						return
					}
				}
				timer.Stop()
				cancel()
				for range ch {
				}
			}
		})
	}
	wg.Wait()
	wantDeliverers(t, before)
}
