package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

const (
	stressWorkers     = 8
	stressOwnNS       = 2 // namespaces each worker owns
	stressOwnKeys     = 6 // keys per owned namespace
	stressSharedNS    = 3
	stressSharedKeys  = 8 // keys per shared namespace
	stressOpsPerRound = 150
)

// stressStart is where the injected clock starts. The workers advance it by
// random amounts of nanoseconds, so expiries are rounded as SetWithTTL
// documents.
var stressStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// TestStress runs eight workers that mix Get, Lookup, Set, SetWithTTL,
// Delete, DeleteNamespace, List and DeleteExpired on one Store, with an
// injected clock that they also advance, and checks what they observe
// against a reference model. It runs three stores: default options; a 4 KiB
// cache with a 2 ms background sweeper (constant eviction, negative entries,
// values too large to cache, sweeps racing with writes) and two more
// goroutines that only read shared keys, so that cache fills race with
// writes; and no cache.
//
// Each worker owns two namespaces of six keys, which it alone writes and
// deletes (DeleteNamespace included), so its model of them is exact:
//   - Get, Lookup and List of an own key return the model's value when the
//     model holds one, and report the key missing when it does not (Lookup
//     tells an empty value from a missing key);
//   - a key set with a TTL is present until its expiry and missing from then
//     on, whatever DeleteExpired does meanwhile. SetWithTTL reads the clock
//     somewhere between the worker's readings before and after the call, so
//     the model knows the expiry within that interval; only a read whose own
//     clock interval overlaps it may find the key either way. Workers also
//     move the clock to exactly an expiry, or 1 ns before it, and read the
//     key there.
//
// Three shared namespaces of eight keys are written by every worker, with
// values never written twice ("g3-17"), and cleared by Delete,
// DeleteNamespace and expiry. Every operation on them is logged with logical
// timestamps (one atomic counter, read before and after the call) and the
// clock interval it ran in. After each round, every read of a shared key is
// checked against the log:
//   - a value read was written to that key, by a write that began before the
//     read ended, and had not certainly expired when the read began;
//   - no read is stale: it never returns a value or an absence that a write
//     completed before the read began had replaced. This is "when Set
//     returns nil, every later Get sees it", applied to every write and
//     delete; a read may return any write it overlaps;
//   - reads agree on the order of writes: once a read that began after
//     write b completed has found write a instead, no read that begins after
//     a completed returns b.
//
// Between rounds, with the workers stopped, every key is read with Lookup
// (through the cache) and List (from SQLite): both must agree with each
// other and with the model or log, and Namespaces must agree with List. At
// the end, the store is swept at rest, which must change no live key,
// closed, and reopened from its file with the same clock, and every key
// must read as it did before Close.
//
// By default each store runs a few rounds of 150 operations per worker (four
// for the small cache, two for the others); set OPSTATE_STRESS_DURATION
// (e.g. "30s") to run for about that long in total.
func TestStress(t *testing.T) {
	var total time.Duration
	if s := os.Getenv("OPSTATE_STRESS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("OPSTATE_STRESS_DURATION: %v", err)
		}
		total = d
	}
	cases := []struct {
		name    string
		opts    opstate.Options
		readers int // goroutines that only read shared keys, as fast as they can
		rounds  int // at least
	}{
		{"default", opstate.Options{}, 0, 2},
		// Fills race with writes here: give it the most time.
		{"small-cache", opstate.Options{CacheBytes: 4096, SweepInterval: 2 * time.Millisecond}, 2, 4},
		{"no-cache", opstate.Options{CacheBytes: -1, SweepInterval: -1}, 0, 2},
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runStress(t, tc.opts, tc.readers, tc.rounds, total/time.Duration(len(cases)), seed+uint64(i))
		})
	}
}

func runStress(t *testing.T, opts opstate.Options, readers, minRounds int, d time.Duration, seed uint64) {
	path := filepath.Join(t.TempDir(), "stress.db")
	var clock atomic.Int64
	clock.Store(stressStart)
	opts.Clock = func() time.Time { return time.Unix(0, clock.Load()) }
	var warnings stressLogBuffer
	opts.Logger = slog.New(slog.NewTextHandler(&warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	st := &stress{t: t, s: s, clock: &clock, hist: make(map[stressKey]*sharedHistory)}
	for i := range stressSharedNS {
		ns := fmt.Sprintf("shared%d", i)
		st.sharedNS = append(st.sharedNS, ns)
		for j := range stressSharedKeys {
			st.hist[stressKey{ns, fmt.Sprintf("k%d", j)}] = &sharedHistory{byValue: make(map[string]*sharedWrite)}
		}
	}
	for id := range stressWorkers + readers {
		w := &stressWorker{
			id:     id,
			reader: id >= stressWorkers,
			st:     st,
			rng:    rand.New(rand.NewPCG(seed, uint64(id))),
			model:  make(map[stressKey]ownEntry),
			writes: make(map[stressKey][]*sharedWrite),
		}
		for j := range stressOwnNS {
			if !w.reader {
				w.ownNS = append(w.ownNS, fmt.Sprintf("own%d-%d", id, j))
			}
		}
		st.workers = append(st.workers, w)
	}

	start := time.Now()
	rounds := 0
	for rounds < minRounds || time.Since(start) < d {
		var wg, rg sync.WaitGroup
		var stop atomic.Bool
		for _, w := range st.workers {
			if w.reader {
				rg.Go(func() {
					for !stop.Load() {
						if w.err = w.readShared(); w.err != nil {
							return
						}
						runtime.Gosched() // leave the writers their share of the CPU
					}
				})
				continue
			}
			wg.Go(func() {
				for range stressOpsPerRound {
					if w.err = w.step(); w.err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		stop.Store(true)
		rg.Wait()
		rounds++
		for _, w := range st.workers {
			if w.err != nil {
				t.Errorf("round %d: worker %d: %v", rounds, w.id, w.err)
			}
		}
		if t.Failed() {
			return
		}
		st.endRound(rounds)
		if t.Failed() {
			return
		}
	}

	// At rest, a sweep deletes only what has expired.
	if _, err := s.DeleteExpired(context.Background()); err != nil {
		t.Fatalf("DeleteExpired at rest: %v", err)
	}
	swept := st.checkAtRest(s, "after the last sweep")
	diffSnapshots(t, "before the last sweep", st.last, "after it", swept)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	if _, err := s.Get("shared0", "k0"); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Get after Close: err = %v; want ErrClosed", err)
	}
	if w := warnings.String(); w != "" {
		t.Errorf("the background sweeper logged:\n%s", w)
	}

	opts.SweepInterval = -1
	s2, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	reopened := st.checkAtRest(s2, "after reopening")
	diffSnapshots(t, "before Close", swept, "after reopening", reopened)
	if err := s2.Close(); err != nil {
		t.Errorf("Close after reopening: %v", err)
	}
	t.Logf("%d rounds of %d operations per worker in %v", rounds, stressOpsPerRound, time.Since(start).Round(time.Millisecond))
}

// stress is the state shared by the workers of one run.
type stress struct {
	t        *testing.T
	s        *opstate.Store
	clock    *atomic.Int64 // Unix nanoseconds; only ever advanced
	tick     atomic.Int64  // logical time of the shared-key log
	sharedNS []string
	workers  []*stressWorker

	// hist is the log of writes to every shared key. The workers do not
	// touch it: they log into their own stressWorker.writes, merged into
	// hist by endRound while they are stopped.
	hist map[stressKey]*sharedHistory

	last map[stressKey]string // live keys at the end of the last round
}

type stressKey struct{ ns, key string }

// endRound checks the round's reads of shared keys, and then every key with
// the workers stopped, and prunes the logs.
func (st *stress) endRound(round int) {
	var reads []sharedRead
	for _, w := range st.workers {
		for k, ws := range w.writes {
			for _, x := range ws {
				st.hist[k].add(x)
			}
		}
		clear(w.writes)
		reads = append(reads, w.reads...)
		w.reads = w.reads[:0]
	}
	for _, h := range st.hist {
		h.index()
	}
	var bad []error
	for _, r := range reads {
		if err := st.hist[r.k].check(r); err != nil {
			bad = append(bad, err)
		}
	}
	bad = append(bad, st.checkOrder(reads)...)
	for i, err := range bad {
		if i == 10 {
			st.t.Errorf("round %d: %d more bad reads left out", round, len(bad)-i)
			break
		}
		st.t.Errorf("round %d: %v", round, err)
	}
	st.last = st.checkAtRest(st.s, fmt.Sprintf("after round %d", round))
	for _, h := range st.hist {
		h.prune()
		h.index()
	}
}

// checkAtRest reads every key of s with List and Lookup, with the workers
// stopped, and checks both against the models and the shared-key logs
// (which must be indexed), against each other, and against Namespaces. It
// returns the live keys and their values.
func (st *stress) checkAtRest(s *opstate.Store, when string) map[stressKey]string {
	t := st.t
	t.Helper()
	now := st.clock.Load()
	snap := make(map[stressKey]string)
	live := make(map[string]int) // namespace -> keys List returned
	check := func(ns string, keys []stressKey, w *stressWorker) {
		start := st.tick.Add(1)
		m, err := s.List(ns)
		end := st.tick.Add(1)
		if err != nil {
			t.Errorf("%s: List(%q): %v", when, ns, err)
			return
		}
		live[ns] = len(m)
		for key, v := range m {
			snap[stressKey{ns, key}] = v
			if !slices.Contains(keys, stressKey{ns, key}) {
				t.Errorf("%s: List(%q) returned key %q, which was never written", when, ns, key)
			}
		}
		for _, k := range keys {
			lv, lok := m[k.key]
			r := sharedRead{k: k, op: "Lookup", c1: now, c2: now}
			r.start = st.tick.Add(1)
			r.value, r.ok, err = s.Lookup(k.ns, k.key)
			r.end = st.tick.Add(1)
			if err != nil {
				t.Errorf("%s: Lookup(%q, %q): %v", when, k.ns, k.key, err)
				continue
			}
			if r.value != lv || r.ok != lok {
				t.Errorf("%s: Lookup(%q, %q) = %.20q, %v; List(%q) holds %.20q, %v", when, k.ns, k.key, r.value, r.ok, ns, lv, lok)
			}
			if w != nil {
				err = w.checkOwn("Lookup", k, r.value, r.ok, now, now)
			} else {
				err = errors.Join(
					st.hist[k].check(sharedRead{k: k, op: "List", start: start, end: end, c1: now, c2: now, value: lv, ok: lok}),
					st.hist[k].check(r))
			}
			if err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}
	for _, w := range st.workers {
		for _, ns := range w.ownNS {
			check(ns, ownKeys(ns), w)
		}
	}
	for _, ns := range st.sharedNS {
		var keys []stressKey
		for j := range stressSharedKeys {
			keys = append(keys, stressKey{ns, fmt.Sprintf("k%d", j)})
		}
		check(ns, keys, nil)
	}

	got, err := s.Namespaces()
	if err != nil {
		t.Errorf("%s: Namespaces: %v", when, err)
		return snap
	}
	var want []opstate.Namespace
	for ns, n := range live {
		if n > 0 {
			want = append(want, opstate.Namespace{Name: ns, Keys: n})
		}
	}
	slices.SortFunc(want, func(a, b opstate.Namespace) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(got, want) {
		t.Errorf("%s: Namespaces() = %v; want %v (from List)", when, got, want)
	}
	return snap
}

// diffSnapshots reports the keys whose values differ between two
// snapshots taken with nothing written in between.
func diffSnapshots(t *testing.T, whenA string, a map[stressKey]string, whenB string, b map[stressKey]string) {
	t.Helper()
	n := 0
	for k, va := range a {
		if vb, ok := b[k]; !ok || va != vb {
			t.Errorf("%s/%s: %s %.20q; %s %.20q, %v", k.ns, k.key, whenA, va, whenB, vb, ok)
			n++
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s/%s: %s missing; %s %.20q", k.ns, k.key, whenA, whenB, vb)
			n++
		}
	}
	if n > 0 {
		t.Errorf("%d keys changed from %s to %s, with nothing written", n, whenA, whenB)
	}
}

func ownKeys(ns string) []stressKey {
	keys := make([]stressKey, stressOwnKeys)
	for i := range keys {
		keys[i] = stressKey{ns, fmt.Sprintf("k%d", i)}
	}
	return keys
}

// stressLogBuffer collects log output from the Store's goroutines.
type stressLogBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (b *stressLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *stressLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
