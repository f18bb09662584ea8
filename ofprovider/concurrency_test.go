package ofprovider_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/open-feature/go-sdk/openfeature"
)

// TestConcurrentEvaluations evaluates flags from many goroutines, through
// the client and through the provider, while a writer flips a toggle and
// counts a number up through the Store and the provider turns the changes
// into events. Invariants, checked against what the writer wrote: every
// evaluation is found (STATIC, no error); the toggle is a bool; the
// number a reader sees never goes down (each key is linearizable through
// one Store, and the provider adds no cache of its own), and is at most
// the last written; once the writer is done, every reader sees its last
// values; configuration changes reached a handler. Run with -race.
func TestConcurrentEvaluations(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	mustSet(t, s, "toggle", "false")
	mustSet(t, s, "n", "0")
	p := ofprovider.New(s, ns)
	c := setProvider(t, p)
	var events atomic.Int64
	f := func(openfeature.EventDetails) { events.Add(1) }
	c.AddHandler(openfeature.ProviderConfigChange, &f)

	const writes, readers = 400, 8
	var written atomic.Int64 // the largest n whose Set returned
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			ctx := context.Background()
			last := int64(-1)
			for stop := false; !stop; {
				select {
				case <-done:
					stop = true // one more round, after the writer's last write
				default:
				}
				var n int64
				var err error
				if r%2 == 0 {
					_, err = c.BooleanValue(ctx, "toggle", false, openfeature.EvaluationContext{})
					if err == nil {
						n, err = c.IntValue(ctx, "n", -1, openfeature.EvaluationContext{})
					}
				} else {
					if d := p.BooleanEvaluation(ctx, "toggle", false, nil); d.Reason != openfeature.StaticReason {
						t.Errorf("reader %d: toggle's reason %s (%v); want STATIC", r, d.Reason, d.Error())
						return
					}
					d := p.IntEvaluation(ctx, "n", -1, nil)
					n, err = d.Value, d.Error()
				}
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				if n < last || n > written.Load() {
					t.Errorf("reader %d: n = %d after %d, %d written; want %d ≤ n ≤ %d", r, n, last, written.Load(), last, written.Load())
					return
				}
				last = n
			}
			if last != writes {
				t.Errorf("reader %d: last n = %d after the writer finished; want %d", r, last, writes)
			}
		})
	}
	for i := 1; i <= writes; i++ {
		// The bound is raised before the write, so that a reader seeing
		// the write never sees it beyond the bound.
		written.Store(int64(i))
		if err := s.Set(ns, "n", strconv.Itoa(i)); err != nil {
			t.Error(err)
			break
		}
		if err := s.Set(ns, "toggle", strconv.FormatBool(i%2 == 0)); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	if events.Load() == 0 {
		t.Error("no configuration change reached the handler")
	}
}
