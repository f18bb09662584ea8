package opstate_test

import (
	"cmp"
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
						runtime.Gosched() // leave the writers their share of two cores
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

// stressWorker is one goroutine of a run, with its model of the keys it
// owns and its log of the round's shared-key operations.
type stressWorker struct {
	id     int
	st     *stress
	rng    *rand.Rand
	ownNS  []string               // none for a reader
	reader bool                   // reads shared keys until the workers' round ends
	model  map[stressKey]ownEntry // a missing entry is a missing key
	seq    int                    // makes every value unique
	err    error                  // what stopped the worker

	writes map[stressKey][]*sharedWrite
	reads  []sharedRead
}

// ownEntry is the model of a key that one worker alone writes.
type ownEntry struct {
	value string
	// expLo and expHi bound the key's expiry in Unix nanoseconds; both are 0
	// when it never expires.
	expLo, expHi int64
}

// ownAllows reports whether a read whose clock reading lay in [c1, c2] may
// find the key of e (nil: not in the model) present, or missing.
func ownAllows(e *ownEntry, present bool, c1, c2 int64) bool {
	switch {
	case e == nil:
		return !present
	case e.expHi == 0:
		return present
	case present:
		return c1 < e.expHi // some clock reading precedes some expiry
	default:
		return c2 >= e.expLo
	}
}

// ownWant describes what ownAllows allows, for messages.
func ownWant(e *ownEntry, c1, c2 int64) string {
	switch {
	case e == nil:
		return "missing"
	case !ownAllows(e, false, c1, c2):
		return fmt.Sprintf("%.20q", e.value)
	case !ownAllows(e, true, c1, c2):
		return fmt.Sprintf("missing (expired at %s, clock at %s)", stressClock(e.expHi), stressClock(c1))
	}
	return fmt.Sprintf("%.20q or missing (expiry in [%s, %s], clock in [%s, %s])",
		e.value, stressClock(e.expLo), stressClock(e.expHi), stressClock(c1), stressClock(c2))
}

// stressClock shows a clock reading as the time since stressStart.
func stressClock(ns int64) string {
	return time.Duration(ns - stressStart).String()
}

func (w *stressWorker) entry(k stressKey) *ownEntry {
	if e, ok := w.model[k]; ok {
		return &e
	}
	return nil
}

// checkOwn checks a Lookup (op "Lookup") or Get (op "Get", where ok is
// unknown) of own key k.
func (w *stressWorker) checkOwn(op string, k stressKey, got string, ok bool, c1, c2 int64) error {
	e := w.entry(k)
	var good bool
	switch {
	case op == "Get" && got == "":
		good = ownAllows(e, false, c1, c2) || ownAllows(e, true, c1, c2) && e.value == ""
	case op == "Get":
		good = ownAllows(e, true, c1, c2) && got == e.value
	case ok:
		good = ownAllows(e, true, c1, c2) && got == e.value
	default:
		good = ownAllows(e, false, c1, c2) && got == ""
	}
	if good {
		return nil
	}
	if op == "Get" {
		return fmt.Errorf("Get(%q, %q) = %.20q; want %s", k.ns, k.key, got, ownWant(e, c1, c2))
	}
	return fmt.Errorf("%s(%q, %q) = %.20q, %v; want %s", op, k.ns, k.key, got, ok, ownWant(e, c1, c2))
}

func (w *stressWorker) checkOwnList(ns string, m map[string]string, c1, c2 int64) error {
	for key := range m {
		if !slices.Contains(ownKeys(ns), stressKey{ns, key}) {
			return fmt.Errorf("List(%q) returned key %q, which was never written", ns, key)
		}
	}
	for _, k := range ownKeys(ns) {
		v, ok := m[k.key]
		if err := w.checkOwn("Lookup", k, v, ok, c1, c2); err != nil {
			return fmt.Errorf("List(%q): key %q: %w", ns, k.key, err)
		}
	}
	return nil
}

func (w *stressWorker) now() int64 { return w.st.clock.Load() }

func (w *stressWorker) ownKey() stressKey {
	return stressKey{w.ownNS[w.rng.IntN(stressOwnNS)], fmt.Sprintf("k%d", w.rng.IntN(stressOwnKeys))}
}

func (w *stressWorker) sharedKey() stressKey {
	return stressKey{w.st.sharedNS[w.rng.IntN(stressSharedNS)], fmt.Sprintf("k%d", w.rng.IntN(stressSharedKeys))}
}

// ownValue returns a new value for an own key: sometimes empty, sometimes
// too large for the small cache.
func (w *stressWorker) ownValue() string {
	w.seq++
	switch w.rng.IntN(20) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("o%d-%d-%s", w.id, w.seq, strings.Repeat("x", 2100))
	}
	return fmt.Sprintf("o%d-%d", w.id, w.seq)
}

func (w *stressWorker) sharedValue() string {
	w.seq++
	return fmt.Sprintf("g%d-%d", w.id, w.seq)
}

// ttl returns a TTL from a millisecond to an hour, in nanoseconds so that
// the expiry gets rounded.
func (w *stressWorker) ttl() time.Duration {
	base := []time.Duration{0, 30 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond, time.Second, time.Hour}
	return base[w.rng.IntN(len(base))] + time.Duration(1+w.rng.Int64N(int64(time.Millisecond)))
}

// expiryAt is when a key written at now with ttl expires, as SetWithTTL
// documents it: now+ttl rounded up to the millisecond.
func expiryAt(now int64, ttl time.Duration) int64 {
	const ms = int64(time.Millisecond)
	exp := now + int64(ttl)
	if r := exp % ms; r > 0 {
		exp += ms - r
	}
	return exp
}

// step performs one random operation and checks its result.
func (w *stressWorker) step() error {
	s := w.st.s
	switch n := w.rng.IntN(100); {
	case n < 14: // Get or Lookup an own key
		k := w.ownKey()
		op := "Lookup"
		var v string
		var ok bool
		var err error
		c1 := w.now()
		if n < 7 {
			op = "Get"
			v, err = s.Get(k.ns, k.key)
		} else {
			v, ok, err = s.Lookup(k.ns, k.key)
		}
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("%s(%q, %q): %w", op, k.ns, k.key, err)
		}
		return w.checkOwn(op, k, v, ok, c1, c2)

	case n < 26: // Set an own key
		k, v := w.ownKey(), w.ownValue()
		if err := s.Set(k.ns, k.key, v); err != nil {
			return fmt.Errorf("Set(%q, %q): %w", k.ns, k.key, err)
		}
		w.model[k] = ownEntry{value: v}

	case n < 35: // SetWithTTL an own key
		k, v, ttl := w.ownKey(), w.ownValue(), w.ttl()
		c1 := w.now()
		err := s.SetWithTTL(k.ns, k.key, v, ttl)
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("SetWithTTL(%q, %q, %v): %w", k.ns, k.key, ttl, err)
		}
		w.model[k] = ownEntry{value: v, expLo: expiryAt(c1, ttl), expHi: expiryAt(c2, ttl)}

	case n < 40: // Delete an own key
		k := w.ownKey()
		if err := s.Delete(k.ns, k.key); err != nil {
			return fmt.Errorf("Delete(%q, %q): %w", k.ns, k.key, err)
		}
		delete(w.model, k)

	case n < 42: // DeleteNamespace an own namespace
		ns := w.ownNS[w.rng.IntN(stressOwnNS)]
		if err := s.DeleteNamespace(ns); err != nil {
			return fmt.Errorf("DeleteNamespace(%q): %w", ns, err)
		}
		for _, k := range ownKeys(ns) {
			delete(w.model, k)
		}

	case n < 46: // List an own namespace
		ns := w.ownNS[w.rng.IntN(stressOwnNS)]
		c1 := w.now()
		m, err := s.List(ns)
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("List(%q): %w", ns, err)
		}
		return w.checkOwnList(ns, m, c1, c2)

	case n < 60: // Get or Lookup a shared key
		return w.readShared()

	case n < 74: // Set or SetWithTTL a shared key
		k := w.sharedKey()
		x := &sharedWrite{value: w.sharedValue()}
		w.writes[k] = append(w.writes[k], x)
		var err error
		if n < 69 {
			x.start = w.st.tick.Add(1)
			err = s.Set(k.ns, k.key, x.value)
			x.end = w.st.tick.Add(1)
		} else {
			ttl := w.ttl()
			x.start = w.st.tick.Add(1)
			c1 := w.now()
			err = s.SetWithTTL(k.ns, k.key, x.value, ttl)
			c2 := w.now()
			x.end = w.st.tick.Add(1)
			x.expLo, x.expHi = expiryAt(c1, ttl), expiryAt(c2, ttl)
		}
		if err != nil {
			return fmt.Errorf("set %q/%q: %w", k.ns, k.key, err)
		}

	case n < 78: // Delete a shared key
		k := w.sharedKey()
		x := &sharedWrite{del: true}
		w.writes[k] = append(w.writes[k], x)
		x.start = w.st.tick.Add(1)
		err := s.Delete(k.ns, k.key)
		x.end = w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("Delete(%q, %q): %w", k.ns, k.key, err)
		}

	case n < 79: // DeleteNamespace a shared namespace: a Delete of each key
		ns := w.st.sharedNS[w.rng.IntN(stressSharedNS)]
		start := w.st.tick.Add(1)
		err := s.DeleteNamespace(ns)
		end := w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("DeleteNamespace(%q): %w", ns, err)
		}
		for j := range stressSharedKeys {
			k := stressKey{ns, fmt.Sprintf("k%d", j)}
			w.writes[k] = append(w.writes[k], &sharedWrite{del: true, start: start, end: end, ns: true})
		}

	case n < 84: // List a shared namespace: a read of each key
		ns := w.st.sharedNS[w.rng.IntN(stressSharedNS)]
		start, c1 := w.st.tick.Add(1), w.now()
		m, err := s.List(ns)
		c2, end := w.now(), w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("List(%q): %w", ns, err)
		}
		for key := range m {
			if w.st.hist[stressKey{ns, key}] == nil {
				return fmt.Errorf("List(%q) returned key %q, which was never written", ns, key)
			}
		}
		for j := range stressSharedKeys {
			k := stressKey{ns, fmt.Sprintf("k%d", j)}
			v, ok := m[k.key]
			w.reads = append(w.reads, sharedRead{k: k, op: "List", start: start, end: end, c1: c1, c2: c2, value: v, ok: ok})
		}

	case n < 90: // DeleteExpired, sometimes leaving before the sweep ends
		ctx := context.Background()
		leave := w.rng.IntN(3) == 0
		if leave {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(w.rng.IntN(300))*time.Microsecond)
			defer cancel()
		}
		deleted, err := s.DeleteExpired(ctx)
		if err != nil && !(leave && errors.Is(err, context.DeadlineExceeded)) {
			return fmt.Errorf("DeleteExpired: %w", err)
		}
		if deleted < 0 {
			return fmt.Errorf("DeleteExpired = %d; want >= 0", deleted)
		}

	case n < 95: // let time pass
		w.st.clock.Add(1 + w.rng.Int64N(int64(250*time.Millisecond)))

	default: // move the clock to the brink of an own key's expiry, and read it
		return w.brink()
	}
	return nil
}

// brink moves the clock to the exact expiry of an own key, or to 1 ns
// before it, sometimes sweeps, and reads the key: at its expiry a key is
// missing, and a nanosecond before it is not, nor swept.
func (w *stressWorker) brink() error {
	s := w.st.s
	now := w.now()
	var keys []stressKey
	for k, e := range w.model {
		if e.expLo == e.expHi && e.expLo > now+1 && e.expLo-now <= int64(time.Second) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b stressKey) int { return strings.Compare(a.ns+"/"+a.key, b.ns+"/"+b.key) })
	k := keys[w.rng.IntN(len(keys))]
	target := w.model[k].expLo - w.rng.Int64N(2)
	for c := w.now(); c < target && !w.st.clock.CompareAndSwap(c, target); c = w.now() {
	}
	if w.rng.IntN(2) == 0 {
		if _, err := s.DeleteExpired(context.Background()); err != nil {
			return fmt.Errorf("DeleteExpired: %w", err)
		}
	}
	c1 := w.now()
	v, ok, err := s.Lookup(k.ns, k.key)
	c2 := w.now()
	if err != nil {
		return fmt.Errorf("Lookup(%q, %q): %w", k.ns, k.key, err)
	}
	return w.checkOwn("Lookup", k, v, ok, c1, c2)
}

// readShared reads a shared key with Get or Lookup, and logs the read.
func (w *stressWorker) readShared() error {
	s := w.st.s
	r := sharedRead{k: w.sharedKey(), op: "Lookup"}
	get := w.rng.IntN(2) == 0
	var err error
	r.start, r.c1 = w.st.tick.Add(1), w.now()
	if get {
		r.op = "Get"
		r.value, err = s.Get(r.k.ns, r.k.key)
		r.ok = r.value != "" // shared values are never empty
	} else {
		r.value, r.ok, err = s.Lookup(r.k.ns, r.k.key)
	}
	r.c2, r.end = w.now(), w.st.tick.Add(1)
	if err != nil {
		return fmt.Errorf("%s(%q, %q): %w", r.op, r.k.ns, r.k.key, err)
	}
	w.reads = append(w.reads, r)
	return nil
}

// checkOrder checks that reads agree on the order of writes: a read r1
// that began after write b completed and found the key holding another
// value, of write a, shows that a was committed after b. So once a has
// completed too, no read may return b any more: it is stale, as much as
// if a had begun after b ended. (While a is in flight, a read may still
// return b: the write is not acknowledged yet.)
func (st *stress) checkOrder(reads []sharedRead) []error {
	type seen struct {
		r   *sharedRead
		x   *sharedWrite // what r returned
		beg int64        // x.end: from then on, r's value must not be undone
	}
	byKey := make(map[stressKey][]seen)
	for i := range reads {
		r := &reads[i]
		if !r.ok {
			continue
		}
		if x := st.hist[r.k].byValue[r.value]; x != nil {
			byKey[r.k] = append(byKey[r.k], seen{r, x, x.end})
		}
	}
	var errs []error
	for _, ss := range byKey {
		slices.SortFunc(ss, func(a, b seen) int { return cmp.Compare(a.r.start, b.r.start) })
		// best[i] holds the read of ss[i:] whose write completed first,
		// and the first of those with another write.
		type top2 struct{ a, b int } // indexes in ss; -1 for none
		best := make([]top2, len(ss)+1)
		best[len(ss)] = top2{-1, -1}
		for i := len(ss) - 1; i >= 0; i-- {
			t := best[i+1]
			switch {
			case t.a < 0:
				t = top2{i, -1}
			case ss[i].beg < ss[t.a].beg && ss[i].x != ss[t.a].x:
				t = top2{i, t.a}
			case ss[i].beg < ss[t.a].beg:
				t = top2{i, t.b}
			case ss[i].x != ss[t.a].x && (t.b < 0 || ss[i].beg < ss[t.b].beg):
				t = top2{t.a, i}
			}
			best[i] = t
		}
		for _, b := range ss {
			i, _ := slices.BinarySearchFunc(ss, b.x.end, func(y seen, t int64) int { return cmp.Compare(y.r.start, t+1) })
			a := best[i].a
			if a >= 0 && ss[a].x == b.x {
				a = best[i].b
			}
			if a >= 0 && ss[a].beg < b.r.start {
				errs = append(errs, fmt.Errorf("%v: stale: %v began after %v ended and found %v, a later write, which ended before this read began",
					b.r, ss[a].r, b.x, ss[a].x))
			}
		}
	}
	return errs
}

// sharedWrite is one logged write to a shared key. Its start and end are
// logical times taken before the call and after it returned; expLo and
// expHi bound the expiry of a SetWithTTL, and are 0 for a Set.
type sharedWrite struct {
	start, end   int64
	del          bool
	ns           bool // a DeleteNamespace
	value        string
	expLo, expHi int64
	pruned       bool // superseded by a write completed before a round ended
}

func (x *sharedWrite) String() string {
	var op string
	switch {
	case x.ns:
		op = "DeleteNamespace"
	case x.del:
		op = "Delete"
	case x.expHi == 0:
		op = fmt.Sprintf("Set %q", x.value)
	default:
		op = fmt.Sprintf("SetWithTTL %q expiring in [%s, %s]", x.value, stressClock(x.expLo), stressClock(x.expHi))
	}
	return fmt.Sprintf("%s at [%d, %d]", op, x.start, x.end)
}

// certainlyVisible reports whether x, as the last write, makes a read at
// any clock up to c2 find the key.
func (x *sharedWrite) certainlyVisible(c2 int64) bool {
	return !x.del && (x.expLo == 0 || x.expLo > c2)
}

// mayHide reports whether x, as the last write, can make a read at some
// clock up to c2 find the key missing.
func (x *sharedWrite) mayHide(c2 int64) bool {
	return x.del || x.expLo != 0 && x.expLo <= c2
}

// sharedRead is one logged read of a shared key: what it returned, its
// logical times and the clock before and after it.
type sharedRead struct {
	k          stressKey
	op         string
	start, end int64
	c1, c2     int64
	value      string
	ok         bool
}

func (r sharedRead) String() string {
	got := "missing"
	if r.ok {
		got = fmt.Sprintf("%q", r.value)
	}
	return fmt.Sprintf("%s(%q, %q) at [%d, %d], clock in [%s, %s], = %s", r.op, r.k.ns, r.k.key, r.start, r.end, stressClock(r.c1), stressClock(r.c2), got)
}

// sharedHistory is the log of writes to one shared key. Between rounds it keeps
// only the writes that no other completed write followed (prune); the
// others stay in byValue, marked pruned, so that reading one is reported.
type sharedHistory struct {
	writes  []*sharedWrite
	byValue map[string]*sharedWrite

	// built by index
	byStart   []*sharedWrite
	byEnd     []*sharedWrite
	sufMinEnd []int64 // sufMinEnd[i] = min end of byStart[i:]
	preMaxEnd []int64 // preMaxEnd[i] = max end of byStart[:i+1]
}

func (h *sharedHistory) add(x *sharedWrite) {
	h.writes = append(h.writes, x)
	if !x.del {
		h.byValue[x.value] = x
	}
}

func (h *sharedHistory) index() {
	h.byStart = slices.Clone(h.writes)
	slices.SortFunc(h.byStart, func(a, b *sharedWrite) int { return cmp.Compare(a.start, b.start) })
	h.byEnd = slices.Clone(h.writes)
	slices.SortFunc(h.byEnd, func(a, b *sharedWrite) int { return cmp.Compare(a.end, b.end) })
	n := len(h.byStart)
	h.sufMinEnd = make([]int64, n)
	h.preMaxEnd = make([]int64, n)
	for i := n - 1; i >= 0; i-- {
		h.sufMinEnd[i] = h.byStart[i].end
		if i+1 < n {
			h.sufMinEnd[i] = min(h.sufMinEnd[i], h.sufMinEnd[i+1])
		}
	}
	for i, x := range h.byStart {
		h.preMaxEnd[i] = x.end
		if i > 0 {
			h.preMaxEnd[i] = max(h.preMaxEnd[i], h.preMaxEnd[i-1])
		}
	}
}

// prune drops the writes that a completed write followed; every write has
// completed when it runs. A later read returning one of them is stale, and
// the writes kept still justify every absence the dropped ones could: the
// last write to start is kept, and it either shows the key (then it
// supersedes them) or may hide it.
func (h *sharedHistory) prune() {
	var last int64
	for _, x := range h.writes {
		last = max(last, x.start)
	}
	kept := h.writes[:0]
	for _, x := range h.writes {
		if x.end > last {
			kept = append(kept, x)
		} else {
			x.pruned = true
		}
	}
	clear(h.writes[len(kept):])
	h.writes = kept
}

// check reports an error if no order of the logged writes that respects
// their logical times can explain r, as far as these tests tell.
func (h *sharedHistory) check(r sharedRead) error {
	if r.ok {
		x := h.byValue[r.value]
		switch {
		case x == nil:
			return fmt.Errorf("%v: value never written to the key", r)
		case x.start > r.end:
			return fmt.Errorf("%v: value written by %v, which began after the read", r, x)
		case x.expHi != 0 && r.c1 >= x.expHi:
			return fmt.Errorf("%v: value written by %v, which had expired", r, x)
		case x.pruned:
			return fmt.Errorf("%v: stale: %v was overwritten by a write completed before the read began", r, x)
		}
		// A write that began after x ended and ended before r began
		// replaced x before r.
		i, _ := slices.BinarySearchFunc(h.byStart, x.end, func(y *sharedWrite, t int64) int { return cmp.Compare(y.start, t+1) })
		if i < len(h.byStart) && h.sufMinEnd[i] < r.start {
			for _, y := range h.byStart[i:] {
				if y.end < r.start {
					return fmt.Errorf("%v: stale: %v was replaced by %v", r, x, y)
				}
			}
		}
		return nil
	}

	// The read found the key missing. Find the last-starting write that
	// completed before r began and certainly shows the key at r's clock.
	var shown *sharedWrite
	j, _ := slices.BinarySearchFunc(h.byEnd, r.start, func(y *sharedWrite, t int64) int { return cmp.Compare(y.end, t) })
	for j--; j >= 0; j-- {
		y := h.byEnd[j]
		if shown != nil && y.end < shown.start {
			break // no earlier write starts later than shown
		}
		if y.certainlyVisible(r.c2) && (shown == nil || y.start > shown.start) {
			shown = y
		}
	}
	if shown == nil {
		return nil // the key was never certainly there
	}
	// Some write that may hide the key must have come after shown: one
	// that began before r ended and ended after shown began.
	i, _ := slices.BinarySearchFunc(h.byStart, r.end, func(y *sharedWrite, t int64) int { return cmp.Compare(y.start, t) })
	for i--; i >= 0 && h.preMaxEnd[i] > shown.start; i-- {
		if y := h.byStart[i]; y.end > shown.start && y.mayHide(r.c2) {
			return nil
		}
	}
	return fmt.Errorf("%v: stale: %v completed before the read began, and no later write deletes the key or lets it expire", r, shown)
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
