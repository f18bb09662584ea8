package linearcheck

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/d8da9184/opstate"
)

// mustOpen opens a Store on a new file in t's temporary directory, closed
// when the test ends.
func mustOpen(t *testing.T, opts opstate.Options) *opstate.Store {
	t.Helper()
	return mustOpenPath(t, filepath.Join(t.TempDir(), "state.db"), opts)
}

func mustOpenPath(t *testing.T, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestLinearizable records histories of concurrent Lookup, Set,
// SetWithTTL, Delete, SetIfAbsent, SetIfAbsentWithTTL, CompareAndSwap,
// CompareAndSwapWithTTL and CompareAndDelete calls and checks each key for
// linearizability with porcupine (see the package documentation for the
// model). Each variant checks rounds(t) histories, each on a new file, and
// fails unless, over its rounds, every conditional kind both changed its
// key and was refused at least once:
//
//   - default: default Options, with the injected clock;
//   - tiny-cache: a cache of 768 bytes, while two goroutines write and read
//     unrelated keys in the checked namespaces and in a third one, so that
//     the checked keys are evicted and read from SQLite again, racing
//     writes; the variant fails if nothing was evicted. 768 bytes hold a
//     few entries, so that many reads of checked keys miss the cache (far
//     fewer at 1 KiB); much less, and an entry plus its namespace no
//     longer fits in half the budget, so nothing is cached at all;
//   - sweeper: the background sweeper every millisecond and a goroutine
//     calling DeleteExpired without pause, while TTLs expire at the phase
//     boundaries, with the read-heavy expiring workload; the variant fails
//     if no sweep deleted anything;
//   - no-cache: the cache disabled, every Lookup reading SQLite: the
//     control, linearizable by SQLite's own transactions;
//   - two-stores: two Stores on one file, on one clock, the clients split
//     between them. Reads through the Store that did not write are allowed
//     to be stale (TestTwoStores checks their bound), so only the writes
//     are checked: the history without its Lookups must be linearizable,
//     every conditional write's answer included, since SQLite decides each
//     in the write's own transaction whichever Store made it. The Lookups
//     still run, so that each Store's cache holds values the other has
//     overwritten: a conditional write decided from the cache fails here.
func TestLinearizable(t *testing.T) {
	variants := []struct {
		name string
		opts opstate.Options
		// during starts what runs next to the workload and returns a
		// function that stops it. It adds to *tally what shows it did its
		// job: over all rounds, the tally must not stay zero.
		during func(t *testing.T, s *opstate.Store, tally *atomic.Int64) (stop func())
		tally  string    // what the tally counts
		w      *workload // nil: standard
		// stores is how many Stores share the file (0: one). With more
		// than one, only the writes are checked.
		stores int
	}{
		{name: "default"},
		{name: "tiny-cache", opts: opstate.Options{CacheBytes: 768}, during: evictions, tally: "cache evictions"},
		{name: "sweeper", opts: opstate.Options{SweepInterval: time.Millisecond}, during: sweeps, tally: "rows deleted by DeleteExpired", w: &expiring},
		{name: "no-cache", opts: opstate.Options{CacheBytes: -1}},
		{name: "two-stores", stores: 2},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var tally atomic.Int64
			var conds [kinds][2]int
			for round := range rounds(t) {
				t.Run(fmt.Sprint("round", round), func(t *testing.T) {
					clk := newClock()
					opts := v.opts
					opts.Clock = clk.Now
					path := filepath.Join(t.TempDir(), "state.db")
					s := mustOpenPath(t, path, opts)
					stores := []kv{s}
					for range v.stores - 1 {
						stores = append(stores, mustOpenPath(t, path, opts))
					}
					if v.during != nil {
						t.Cleanup(v.during(t, s, &tally)) // runs before Close
					}
					seed := rand.Uint64()
					w := standard
					if v.w != nil {
						w = *v.w
					}
					history := w.run(t, stores, clk, seed)
					if len(stores) > 1 {
						history = slices.DeleteFunc(history, func(op porcupine.Operation) bool { return op.Input.(input).Kind == opGet })
					}
					t.Logf("seed %d, %d operations checked", seed, len(history))
					n := outcomes(history)
					for k := range n {
						conds[k][0] += n[k][0]
						conds[k][1] += n[k][1]
					}
					check(t, history)
				})
			}
			for k := opSetIfAbsent; int(k) < kinds; k++ {
				t.Logf("%v: %d changed the key, %d refused", k, conds[k][1], conds[k][0])
				if (conds[k][0] == 0 || conds[k][1] == 0) && !t.Failed() {
					t.Errorf("%v: %d changed the key, %d refused, over %d histories; want some of each, or the variant does not test it", k, conds[k][1], conds[k][0], rounds(t))
				}
			}
			if v.during != nil {
				t.Logf("%s: %d", v.tally, tally.Load())
				if tally.Load() == 0 && !t.Failed() {
					t.Errorf("%s = 0 over %d histories; want some, or the variant tests nothing more than default", v.tally, rounds(t))
				}
			}
		})
	}
}

// evictions starts two goroutines that write and read keys nobody checks,
// next to the checked keys and in a namespace of their own, so that a small
// cache keeps evicting. Stopping them adds the evictions to tally.
func evictions(t *testing.T, s *opstate.Store, tally *atomic.Int64) func() {
	pad := strings.Repeat("x", 40)
	namespaces := []string{"a", "b", "noise"}
	var stops []func()
	for g := range 2 {
		rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(g)))
		stops = append(stops, background(func() {
			ns := namespaces[rng.IntN(len(namespaces))]
			key := fmt.Sprintf("noise%d", rng.IntN(32))
			var err error
			if rng.IntN(2) == 0 {
				err = s.Set(ns, key, pad)
			} else {
				_, _, err = s.Lookup(ns, key)
			}
			if err != nil {
				t.Errorf("noise %s/%s: %v", ns, key, err)
			}
		}))
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
		tally.Add(int64(s.CacheStats().Evictions))
	}
}

// sweeps starts a goroutine that calls DeleteExpired without pause, next
// to the background sweeper. Stopping it adds the rows its calls reported
// deleted to tally.
func sweeps(t *testing.T, s *opstate.Store, tally *atomic.Int64) func() {
	return background(func() {
		n, err := s.DeleteExpired(context.Background())
		if err != nil {
			t.Errorf("DeleteExpired: %v", err)
		}
		tally.Add(n)
	})
}

// staleStore wraps a Store and answers some reads with a value that was
// certainly overwritten before the read began: the value of a Set made in
// a phase before the phase of another write of the key, which itself came
// before the phase of the read. Phases are told apart by the clock, which
// moves only between them, when no call is in flight.
type staleStore struct {
	*opstate.Store
	clk  *clock
	step time.Duration

	mu sync.Mutex // guards writes, reads and served
	// writes records the completed writes of each key, in completion
	// order.
	writes map[keyID][]staleWrite
	reads  int
	served int // stale values returned
}

type staleWrite struct {
	phase int64
	value string
	set   bool // a Set or SetWithTTL, whose value a stale read may return
}

func (s *staleStore) phase() int64 {
	return (s.clk.nanos.Load() - epoch.UnixNano()) / int64(s.step)
}

func (s *staleStore) record(ns, key string, w staleWrite) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := keyID{ns, key}
	s.writes[k] = append(s.writes[k], w)
}

func (s *staleStore) Set(ns, key, value string) error {
	p := s.phase()
	if err := s.Store.Set(ns, key, value); err != nil {
		return err
	}
	s.record(ns, key, staleWrite{phase: p, value: value, set: true})
	return nil
}

func (s *staleStore) SetWithTTL(ns, key, value string, ttl time.Duration) error {
	p := s.phase()
	if err := s.Store.SetWithTTL(ns, key, value, ttl); err != nil {
		return err
	}
	s.record(ns, key, staleWrite{phase: p, value: value, set: true})
	return nil
}

func (s *staleStore) Delete(ns, key string) error {
	p := s.phase()
	if err := s.Store.Delete(ns, key); err != nil {
		return err
	}
	s.record(ns, key, staleWrite{phase: p})
	return nil
}

// Lookup returns, on every other read that can have one, a value some
// write of an earlier phase overwrote; otherwise what the Store returns.
func (s *staleStore) Lookup(ns, key string) (string, bool, error) {
	p := s.phase()
	s.mu.Lock()
	s.reads++
	if s.reads%2 == 0 {
		ws := s.writes[keyID{ns, key}]
		// The first Set of the key whose phase is followed by another
		// write's phase, both before p.
		for i, w := range ws {
			if !w.set || w.phase >= p {
				continue
			}
			for _, later := range ws[i+1:] {
				if later.phase > w.phase && later.phase < p {
					s.served++
					s.mu.Unlock()
					return w.value, true, nil
				}
			}
		}
	}
	s.mu.Unlock()
	return s.Store.Lookup(ns, key)
}

// TestStaleWrapperRejected checks that the workload and the model catch a
// store that serves overwritten values: the standard workload runs through
// staleStore, and porcupine must find the history not linearizable.
func TestStaleWrapperRejected(t *testing.T) {
	clk := newClock()
	s := &staleStore{
		Store:  mustOpen(t, opstate.Options{Clock: clk.Now}),
		clk:    clk,
		step:   standard.Step,
		writes: map[keyID][]staleWrite{},
	}
	seed := rand.Uint64()
	history := standard.run(t, []kv{s}, clk, seed)
	if s.served == 0 {
		t.Fatalf("seed %d: the wrapper served no stale value; the test proves nothing", seed)
	}
	if got := porcupine.CheckOperationsTimeout(model, history, checkTimeout); got != porcupine.Illegal {
		t.Errorf("seed %d: porcupine on a history with %d stale reads of %d = %s; want Illegal", seed, s.served, s.reads, got)
	}
}

// checkThenAct wraps a Store and makes every conditional write the way
// opstate must not: a Lookup, a comparison in Go, then a plain write. Two
// racing calls can both find the key absent, or both find the old value,
// and both write.
type checkThenAct struct {
	*opstate.Store
}

func (s checkThenAct) SetIfAbsent(ns, key, value string) (bool, error) {
	if _, ok, err := s.Lookup(ns, key); err != nil || ok {
		return false, err
	}
	return true, s.Set(ns, key, value)
}

func (s checkThenAct) SetIfAbsentWithTTL(ns, key, value string, ttl time.Duration) (bool, error) {
	if _, ok, err := s.Lookup(ns, key); err != nil || ok {
		return false, err
	}
	return true, s.SetWithTTL(ns, key, value, ttl)
}

func (s checkThenAct) CompareAndSwap(ns, key, old, new string) (bool, error) {
	if v, ok, err := s.Lookup(ns, key); err != nil || !ok || v != old {
		return false, err
	}
	return true, s.Set(ns, key, new)
}

func (s checkThenAct) CompareAndSwapWithTTL(ns, key, old, new string, ttl time.Duration) (bool, error) {
	if v, ok, err := s.Lookup(ns, key); err != nil || !ok || v != old {
		return false, err
	}
	return true, s.SetWithTTL(ns, key, new, ttl)
}

func (s checkThenAct) CompareAndDelete(ns, key, old string) (bool, error) {
	if v, ok, err := s.Lookup(ns, key); err != nil || !ok || v != old {
		return false, err
	}
	return true, s.Delete(ns, key)
}

// TestCheckThenActRejected checks that the workload and the model catch
// conditional writes decided by a read in Go followed by a write, in one
// Store and in two on one file: the standard workload runs through
// checkThenAct, and porcupine must find one of a few histories not
// linearizable. (A race that never happened cannot be seen, so a single
// history could pass; the test logs how many it took.)
func TestCheckThenActRejected(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, "-stores"), func(t *testing.T) {
			const tries = 5
			for try := range tries {
				clk := newClock()
				path := filepath.Join(t.TempDir(), "state.db")
				var stores []kv
				for range n {
					stores = append(stores, checkThenAct{mustOpenPath(t, path, opstate.Options{Clock: clk.Now})})
				}
				seed := rand.Uint64()
				history := standard.run(t, stores, clk, seed)
				if n > 1 {
					history = slices.DeleteFunc(history, func(op porcupine.Operation) bool { return op.Input.(input).Kind == opGet })
				}
				if got := porcupine.CheckOperationsTimeout(model, history, checkTimeout); got == porcupine.Illegal {
					t.Logf("seed %d: Illegal in history %d of %d", seed, try+1, tries)
					return
				}
			}
			t.Errorf("porcupine found all %d histories of check-then-act conditional writes linearizable; want Illegal", tries)
		})
	}
}
