package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d8da9184/opstate"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

// hitNamespace is the namespace of the opstate runs.
const hitNamespace = "hr"

// otterRuns is how many times otter runs each trace (with its maintenance
// on the caller's goroutine); the table gives the median and the range.
const otterRuns = 5

// opstateRuns is how many times opstate runs each trace: its cache's
// hash seed and its admission draw random numbers too; the table gives
// the median and the range.
const opstateRuns = 3

// hitResult is the hit ratios of one trace.
type hitResult struct {
	spec                         traceSpec
	lookups                      int
	opstate, otter, lru, optimal float64
	// lfu is an exact LFU cache's hit ratio (lfu.go), fixed the best
	// fixed set's (fixed.go).
	lfu, fixed float64
	// otterRuns are otter's hit ratios in each of its runs, otter their
	// median: otter's hash seeds and admission draw random numbers, so
	// that its hit ratio varies from run to run.
	otterRuns []float64
	// opstateRuns are opstate's, opstate their median.
	opstateRuns []float64
	// otterAsync is otter's hit ratio with its default executor, and
	// otterMost the most entries it held then.
	otterAsync float64
	otterMost  int
	// entries is what opstate's cache held after the trace, to compare
	// with the capacity it was given.
	entries int
}

// runHitRatio runs every trace whose name only matches (all when nil)
// through each policy and prints the table and the targets to w.
func runHitRatio(w io.Writer, dir string, only *regexp.Regexp) error {
	began := time.Now()
	var specs []traceSpec
	for _, sp := range traceSpecs() {
		if only == nil || only.MatchString(sp.name) {
			specs = append(specs, sp)
		}
	}
	if len(specs) == 0 {
		return fmt.Errorf("-only %q selects no trace", only)
	}
	traces := make([]trace, len(specs))
	n := 0
	for i, sp := range specs {
		traces[i] = sp.gen()
		n = max(n, traces[i].keys)
	}
	keys := newTraceKeys(n)
	db := filepath.Join(dir, "hitratio.db")
	if err := fillHitStore(db, keys); err != nil {
		return fmt.Errorf("filling %s: %w", db, err)
	}
	fmt.Fprintf(os.Stderr, "traces generated and %d keys stored in %v\n", n, time.Since(began).Round(time.Millisecond))

	var results []hitResult
	for i, t := range traces {
		res := hitResult{spec: specs[i], lookups: len(t.lookups)}
		total := float64(len(t.lookups))
		for range opstateRuns {
			hits, entries, err := opstateHits(db, keys, t)
			if err != nil {
				return fmt.Errorf("%s: opstate: %w", t.name, err)
			}
			res.opstateRuns = append(res.opstateRuns, float64(hits)/total)
			if res.entries == 0 || entries != t.capacity {
				res.entries = entries
			}
		}
		res.opstate = median(res.opstateRuns)
		for range otterRuns {
			oh, most := otterHits(keys, t, false)
			if most > t.capacity {
				return fmt.Errorf("%s: otter held %d entries, above its MaximumSize %d", t.name, most, t.capacity)
			}
			res.otterRuns = append(res.otterRuns, float64(oh)/total)
		}
		res.otter = median(res.otterRuns)
		oh, most := otterHits(keys, t, true)
		res.otterMost = most
		res.otterAsync = float64(oh) / total
		res.lru = float64(lruHits(keys, t)) / total
		res.lfu = float64(lfuHits(t.lookups, t.keys, t.capacity)) / total
		res.fixed = float64(fixedHits(t.lookups, t.keys, t.capacity)) / total
		res.optimal = float64(optimalHits(t.lookups, t.keys, t.capacity)) / total
		fmt.Fprintf(os.Stderr, "%-14s opstate %.3f (%.3f–%.3f)  otter %.3f (async %.3f)  lru %.3f  lfu %.3f  fixed %.3f  optimal %.3f  (%v)\n",
			t.name, res.opstate, slices.Min(res.opstateRuns), slices.Max(res.opstateRuns), res.otter, res.otterAsync, res.lru, res.lfu, res.fixed, res.optimal, time.Since(began).Round(time.Millisecond))
		results = append(results, res)
	}
	printRunHeader(w, began)
	printHitTable(w, results)
	printHitTargets(w, results)
	fmt.Fprintf(w, "\nTotal time %v.\n", time.Since(began).Round(time.Second))
	return nil
}

// traceKeys holds the keys and values of key numbers 0..n-1, built once
// so that no run formats a key per lookup.
type traceKeys struct{ keys, values []string }

func newTraceKeys(n int) traceKeys {
	tk := traceKeys{keys: make([]string, n), values: make([]string, n)}
	for i := range n {
		tk.keys[i], tk.values[i] = traceKey(i), traceValue(i)
	}
	return tk
}

// fillHitStore stores every key of tk with its value in a new opstate file
// at path, and closes it.
func fillHitStore(path string, tk traceKeys) (err error) {
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, CacheBytes: -1})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	// Goroutines enough for group commit to write many keys a transaction.
	const writers = 32
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := g; i < len(tk.keys) && errs[g] == nil; i += writers {
				errs[g] = s.Set(hitNamespace, tk.keys[i], tk.values[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// opstateCacheBytes returns the Options.CacheBytes under which the Store of
// the file at path caches capacity entries of the file's keys, all of one
// size: the cache's own accounting, read from CacheStats.Bytes after
// caching one entry and then two, is a namespace's cost plus an entry's
// for each.
func opstateCacheBytes(path string, capacity int) (int64, error) {
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, CacheBytes: 1 << 30})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var bytes [2]int64
	for i := range bytes {
		if v, err := s.Get(hitNamespace, traceKey(i)); err != nil || v != traceValue(i) {
			return 0, fmt.Errorf("Get(%q) = %q, %v; want %q", traceKey(i), v, err, traceValue(i))
		}
		bytes[i] = s.CacheStats().Bytes
	}
	entry := bytes[1] - bytes[0]
	space := bytes[0] - entry
	if entry <= 0 || space < 0 {
		return 0, fmt.Errorf("cache accounts %d bytes for one entry, %d for two", bytes[0], bytes[1])
	}
	return space + int64(capacity)*entry, s.Close()
}

// opstateHits runs t through a Store on the filled file at path, opened
// cold with room for t.capacity entries, and returns its hits (lookups
// less the Gets that read SQLite) and the entries it caches at the end.
func opstateHits(path string, tk traceKeys, t trace) (hits, entries int, err error) {
	budget, err := opstateCacheBytes(path, t.capacity)
	if err != nil {
		return 0, 0, err
	}
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, CacheBytes: budget})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	keys, values := tk.keys, tk.values
	before := s.Stats().Misses
	for _, k := range t.lookups {
		v, err := s.Get(hitNamespace, keys[k])
		if err != nil {
			return 0, 0, err
		}
		if v != values[k] {
			return 0, 0, fmt.Errorf("Get(%q) = %q; want %q", keys[k], v, values[k])
		}
	}
	misses := s.Stats().Misses - before
	return len(t.lookups) - int(misses), s.CacheStats().Entries, nil
}

// otterHits runs t through otter of MaximumSize t.capacity, GetIfPresent
// then Set on a miss, and returns its hits and the most entries it held
// after a lookup. With async, otter runs with its default options, its
// maintenance (eviction among it) on goroutines of its own, which a
// single caller outruns: it then holds more than t.capacity entries for a
// while, and its read buffer, lossy by design, records fewer reads.
// Without, maintenance runs on the caller's goroutine, and the cache holds
// t.capacity entries at most.
func otterHits(tk traceKeys, t trace, async bool) (hits, most int) {
	opts := &otter.Options[string, string]{MaximumSize: t.capacity}
	if !async {
		opts.Executor = func(fn func()) { fn() }
	}
	c := otter.Must(opts)
	for _, k := range t.lookups {
		if _, ok := c.GetIfPresent(tk.keys[k]); ok {
			hits++
		} else {
			c.Set(tk.keys[k], tk.values[k])
		}
		most = max(most, c.EstimatedSize())
	}
	return hits, most
}

// lruHits runs t through golang-lru's LRU of t.capacity entries: Get, then
// Add on a miss.
func lruHits(tk traceKeys, t trace) int {
	c, err := lru.New[string, string](t.capacity)
	if err != nil {
		panic(err) // only for a capacity <= 0
	}
	hits := 0
	for _, k := range t.lookups {
		if _, ok := c.Get(tk.keys[k]); ok {
			hits++
		} else {
			c.Add(tk.keys[k], tk.values[k])
		}
	}
	return hits
}

// points formats a difference of hit ratios in percentage points.
func points(d float64) string { return fmt.Sprintf("%+.1f", 100*d) }

func printHitTable(w io.Writer, results []hitResult) {
	fmt.Fprintf(w, "\n## Hit ratio\n\n| trace | lookups | cache (entries) | opstate | otter | golang-lru | exact LFU | best fixed set | optimal | opstate − otter (points) | otter, default executor (most entries) |\n")
	fmt.Fprintf(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	short := false
	for _, r := range results {
		op := fmt.Sprintf("%.3f (%.3f–%.3f)", r.opstate, slices.Min(r.opstateRuns), slices.Max(r.opstateRuns))
		if r.entries != r.spec.capacity {
			op += fmt.Sprintf(" (%d entries)", r.entries)
			short = true
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %.3f (%.3f–%.3f) | %.3f | %.3f | %.3f | %.3f | %s | %.3f (%d) |\n", r.spec.name, r.lookups, r.spec.capacity,
			op, r.otter, slices.Min(r.otterRuns), slices.Max(r.otterRuns), r.lru, r.lfu, r.fixed, r.optimal, points(r.opstate-r.otter), r.otterAsync, r.otterMost)
	}
	fmt.Fprintf(w, `
Hit ratio: hits ÷ lookups over the whole trace, the first lookups of every
key (which no cache can answer) included; every cache starts empty.

- opstate: a Store on a file that another Store filled with every key of
  the traces (%d-byte keys "key-0000000", %d-byte values) and closed; the
  measuring Store opens it cold, with Options.CacheBytes set to what its
  cache accounts for the namespace and the capacity's entries (measured
  through CacheStats.Bytes), and calls Get for every lookup. Hits are
  lookups less the Gets that read SQLite (Stats.Misses). Its cache's hash
  seed and admission draw random numbers too: the median of %d runs, their
  range in parentheses. After the trace its cache held the capacity in
  entries`, len(traceKey(0)), traceValLen, opstateRuns)
	if short {
		fmt.Fprintf(w, ", except where the entries are given")
	}
	fmt.Fprintf(w, `.
- otter: otter v2, Options{MaximumSize: capacity, Executor: func(fn
  func()) { fn() }}: its maintenance (eviction among it) runs on the
  caller's goroutine, so that it never holds more than the capacity;
  GetIfPresent, then Set on a miss. Its hash seeds and its admission draw
  random numbers, so that its hit ratio varies from run to run: the median
  of %d runs, their range in parentheses; the targets compare with the
  median. The last column is one run of otter with its default executor,
  which runs maintenance on goroutines of its own: a single caller
  outruns them, so that the cache holds more entries than its capacity
  for a while (the most it held after a lookup in parentheses), and its
  read buffer, lossy by design, records fewer reads.
- golang-lru: lru.New(capacity); Get, then Add on a miss.
- exact LFU: every lookup of every key counted since the trace began,
  cached or not; on a miss, the cached key counted least is replaced by
  the one looked up only if that one is now counted more (bench/lfu.go).
  What a frequency sketch approximates, without its collisions and
  without forgetting: where popularity does not change, about the most
  that admission by frequency gets.
- best fixed set: the capacity's keys looked up most often in the whole
  trace, each cached at its first lookup and kept (bench/fixed.go). Where
  lookups are independent draws, keeping the keys most likely to come
  next is the best a policy that sees only the past can do: about the
  most any such policy gets there, even knowing the probabilities.
- optimal: Belady's clairvoyant policy on the whole trace: on a miss, of
  the cached keys and the one looked up, the one looked up again farthest
  ahead is left out (it may be the new one). No policy does better.

| trace | what it is |
| --- | --- |
`, otterRuns)
	seen := map[string]bool{}
	for _, r := range results {
		if !seen[r.spec.note] {
			seen[r.spec.note] = true
			name := r.spec.name
			if strings.HasPrefix(name, "zipf-") {
				name = strings.TrimSuffix(strings.TrimSuffix(name, "/1%"), "/10%") + "/…"
			}
			fmt.Fprintf(w, "| %s | %s |\n", name, r.spec.note)
		}
	}
}

func printHitTargets(w io.Writer, results []hitResult) {
	var ts []target
	for _, r := range results {
		limit := 0.0
		if r.spec.name == "scan" || r.spec.name == "loop" {
			limit = 0.05 // where recency alone fails, beat otter clearly
		}
		ts = append(ts, target{r.spec.name + ": opstate − otter", r.opstate - r.otter, ">=", limit,
			func(d float64) string { return points(d) + " points" }})
	}
	fmt.Fprintf(w, "\n## Targets\n\n| target | measured | required | result |\n| --- | ---: | ---: | --- |\n")
	pass := 0
	for _, t := range ts {
		r := t.result()
		if r == "PASS" {
			pass++
		}
		fmt.Fprintf(w, "| %s | %s | %s %s | %s |\n", t.name, t.format(t.measured), t.op, t.format(t.limit), r)
	}
	fmt.Fprintf(w, "\n%d of %d targets pass.\n", pass, len(ts))
}
