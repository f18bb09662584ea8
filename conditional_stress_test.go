package opstate_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

const (
	condStressWorkers = 6
	condStressKeys    = 5 // keys per worker
	condStressPhases  = 30
	condStressOps     = 30 // per worker and phase
	condStressStep    = 10 * time.Millisecond
)

// condEntry is the reference model's record of one key: its value, and
// its expiry in Unix nanoseconds (0: never).
type condEntry struct {
	value   string
	expires int64
}

// condModel is one worker's exact model of the keys it alone writes.
type condModel map[string]condEntry

// get returns what a read at clock now returns.
func (m condModel) get(key string, now int64) (string, bool) {
	e, ok := m[key]
	if !ok || e.expires != 0 && now >= e.expires {
		return "", false
	}
	return e.value, true
}

// live returns the keys live at now with their values, as List returns
// them.
func (m condModel) live(now int64) map[string]string {
	out := map[string]string{}
	for k := range m {
		if v, ok := m.get(k, now); ok {
			out[k] = v
		}
	}
	return out
}

// TestConditionalStress runs six workers that mix SetIfAbsent,
// SetIfAbsentWithTTL, CompareAndSwap, CompareAndSwapWithTTL and
// CompareAndDelete with Get, Lookup, Set, SetWithTTL and Delete on one
// Store whose cache holds a third of the keys (2 KiB: most reads miss it,
// and keys are read from SQLite again after eviction; the test logs how
// many reads went to SQLite)
// while the background sweeper runs every millisecond. Each worker alone writes the keys of its own namespace, so
// a plain model of them is exact. The injected clock moves only between
// phases, when no call is in flight, by 10ms; TTLs expire before, on and
// after phase boundaries.
//
// Invariants, checked after every call against the worker's model:
//   - a read returns exactly what the model holds at the phase's clock (a
//     key is absent when missing or when now >= its expiry; Lookup tells
//     "" from absent);
//   - SetIfAbsent reports true exactly when the model's key is absent,
//     CompareAndSwap and CompareAndDelete exactly when it is live and holds
//     the old value given; a refused call changes nothing, a successful
//     one changes the key as documented (CompareAndSwap clears the
//     expiry, the WithTTL variants set theirs);
//
// and between phases, every worker's namespace listed with List (from
// SQLite) equals the model's live keys, and reads through the cache agree.
// At the end the Store is closed and reopened, and every key must read as
// the models say. The test fails if the cache evicted nothing, or if a
// conditional kind never succeeded or never was refused.
func TestConditionalStress(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	opts := opstate.Options{CacheBytes: 2 << 10, SweepInterval: time.Millisecond, Clock: clk.Now}
	s := mustOpen(t, path, opts)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)

	models := make([]condModel, condStressWorkers)
	for w := range models {
		models[w] = condModel{}
	}
	// outcomes[op][won] counts the conditional calls, over all workers.
	var mu sync.Mutex // guards outcomes
	outcomes := map[string][2]int{}
	for phase := range condStressPhases {
		now := clk.Now().UnixNano()
		var wg sync.WaitGroup
		for w := range condStressWorkers {
			rng := rand.New(rand.NewPCG(seed, uint64(phase*condStressWorkers+w)))
			wg.Go(func() {
				counts, err := condStressPhase(s, rng, fmt.Sprint("w", w), models[w], now, phase)
				mu.Lock()
				defer mu.Unlock()
				for op, c := range counts {
					o := outcomes[op]
					o[0] += c[0]
					o[1] += c[1]
					outcomes[op] = o
				}
				if err != nil {
					t.Errorf("worker %d, phase %d: %v", w, phase, err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		condStressAtRest(t, s, models, now, fmt.Sprint("after phase ", phase))
		clk.Advance(condStressStep)
	}
	t.Logf("conditional calls [refused, changed the key]: %v; cache %+v; reads from SQLite %d", outcomes, s.CacheStats(), s.Stats().Misses)
	if s.CacheStats().Evictions == 0 {
		t.Errorf("the cache evicted nothing; want a cache too small for the keys")
	}
	for _, op := range []string{"SetIfAbsent", "SetIfAbsentWithTTL", "CompareAndSwap", "CompareAndSwapWithTTL", "CompareAndDelete"} {
		if o := outcomes[op]; o[0] == 0 || o[1] == 0 {
			t.Errorf("%s: %d refused, %d changed the key; want some of each", op, o[0], o[1])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	condStressAtRest(t, mustOpen(t, path, opts), models, clk.Now().UnixNano(), "after reopening")
}

// condStressAtRest checks every worker's namespace, with no call in
// flight: List and Lookup against the model.
func condStressAtRest(t *testing.T, s *opstate.Store, models []condModel, now int64, when string) {
	t.Helper()
	for w, m := range models {
		ns := fmt.Sprint("w", w)
		want := m.live(now)
		got, err := s.List(ns)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("%s: List(%q) = %v, %v; want %v", when, ns, got, err, want)
		}
		for k := range condStressKeys {
			key := fmt.Sprint("k", k)
			v, ok := m.get(key, now)
			wantGet(t, s, ns, key, v, ok)
		}
	}
}

// condStressPhase runs one worker's calls of one phase on ns, at clock now,
// checking each against m and updating m. It returns, for each conditional
// kind, how many calls were refused and how many changed the key.
func condStressPhase(s *opstate.Store, rng *rand.Rand, ns string, m condModel, now int64, phase int) (map[string][2]int, error) {
	ttls := []time.Duration{time.Millisecond, condStressStep - time.Millisecond, condStressStep,
		condStressStep + time.Millisecond, 3 * condStressStep, time.Hour}
	counts := map[string][2]int{}
	for i := range condStressOps {
		key := fmt.Sprint("k", rng.IntN(condStressKeys))
		value := fmt.Sprintf("%s-%s-%d-%d", ns, key, phase, i)
		if rng.IntN(10) == 0 {
			value = ""
		}
		ttl := ttls[rng.IntN(len(ttls))]
		cur, live := m.get(key, now)
		// old matches the key most of the time it is live.
		old := cur
		if !live || rng.IntN(3) == 0 {
			old = []string{"", fmt.Sprintf("%s-%s-%d-%d", ns, key, phase, rng.IntN(max(i, 1)))}[rng.IntN(2)]
		}
		var (
			op        string
			got, want bool
			err       error
			next      = condEntry{value: value}
		)
		withTTL := condEntry{value: value, expires: now + int64(ttl)}
		switch r := rng.IntN(100); {
		case r < 25:
			v, ok, err := s.Lookup(ns, key)
			if err != nil || v != cur || ok != live {
				return counts, fmt.Errorf("Lookup(%q) = %q, %v, %v; want %q, %v, nil", key, v, ok, err, cur, live)
			}
			continue
		case r < 30:
			v, err := s.Get(ns, key)
			if err != nil || v != cur {
				return counts, fmt.Errorf("Get(%q) = %q, %v; want %q, nil", key, v, err, cur)
			}
			continue
		case r < 40:
			op, got, want, err = "Set", true, true, s.Set(ns, key, value)
		case r < 50:
			op, got, want, err, next = "SetWithTTL", true, true, s.SetWithTTL(ns, key, value, ttl), withTTL
		case r < 55:
			op, got, want, err = "Delete", true, true, s.Delete(ns, key)
		case r < 65:
			op, want = "SetIfAbsent", !live
			got, err = s.SetIfAbsent(ns, key, value)
		case r < 75:
			op, want, next = "SetIfAbsentWithTTL", !live, withTTL
			got, err = s.SetIfAbsentWithTTL(ns, key, value, ttl)
		case r < 85:
			op, want = "CompareAndSwap", live && cur == old
			got, err = s.CompareAndSwap(ns, key, old, value)
		case r < 93:
			op, want, next = "CompareAndSwapWithTTL", live && cur == old, withTTL
			got, err = s.CompareAndSwapWithTTL(ns, key, old, value, ttl)
		default:
			op, want = "CompareAndDelete", live && cur == old
			got, err = s.CompareAndDelete(ns, key, old)
		}
		call := fmt.Sprintf("%s(%q, old %q, new %q, ttl %v) with %q live=%v", op, key, old, value, ttl, cur, live)
		if err != nil || got != want {
			return counts, fmt.Errorf("%s = %v, %v; want %v, nil", call, got, err, want)
		}
		if op != "Set" && op != "SetWithTTL" && op != "Delete" {
			c := counts[op]
			if got {
				c[1]++
			} else {
				c[0]++
			}
			counts[op] = c
		}
		switch {
		case !got:
		case op == "Delete" || op == "CompareAndDelete":
			delete(m, key)
		default:
			m[key] = next
		}
	}
	return counts, nil
}
