package cache_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/d8da9184/opstate/internal/cache"
)

// The tests use only the exported API, so that they hold for any layout of
// the cache that keeps its documented behaviour.

// Entry is cache.Entry, for brevity.
type Entry = cache.Entry

// put records a committed write of e for ns and key the way the Store does:
// Begin before the commit, End with the entry after it.
func put(c *cache.Cache, ns, key string, e Entry) { c.End(c.Begin(ns, key), &e) }

// removeNamespace records a committed write that deleted every key of ns.
func removeNamespace(c *cache.Cache, ns string) { c.End(c.BeginNamespace(ns), nil) }

// nsKey names one cached key.
type nsKey struct{ ns, key string }

// nsOverhead is what a namespace holding entries costs on top of its name,
// measured once through Stats; TestStats then checks that every namespace
// costs the same.
var nsOverhead = func() int64 {
	c := cache.New(1 << 20)
	put(c, "", "", Entry{})
	return c.Stats().Bytes - cache.EntryOverhead
}()

// entryBytes and nsBytes restate the documented accounting: key and value
// bytes plus EntryOverhead per entry, name bytes plus a fixed overhead per
// namespace holding entries.
func entryBytes(key string, e Entry) int64 { return int64(len(key)+len(e.Value)) + cache.EntryOverhead }
func nsBytes(ns string) int64              { return int64(len(ns)) + nsOverhead }

// recount looks up every key of universe, which must hold every key ever
// written to c, and checks Stats against what it finds: entry and namespace
// counts, bytes accounted, and that they fit the budget. Its lookups count
// as reads. It returns the Stats.
func recount(t *testing.T, c *cache.Cache, universe []nsKey) cache.Stats {
	t.Helper()
	got := c.Stats()
	want := cache.Stats{Budget: got.Budget, Evictions: got.Evictions}
	seen := make(map[nsKey]bool)
	spaces := make(map[string]bool)
	for _, k := range universe {
		if seen[k] {
			continue
		}
		seen[k] = true
		e, ok := c.Get(k.ns, k.key)
		if !ok {
			continue
		}
		want.Entries++
		want.Bytes += entryBytes(k.key, e)
		if !spaces[k.ns] {
			spaces[k.ns] = true
			want.Namespaces++
			want.Bytes += nsBytes(k.ns)
		}
	}
	if got != want {
		t.Errorf("Stats() = %+v; recounted %+v", got, want)
	}
	if got.Bytes > got.Budget {
		t.Errorf("Stats().Bytes = %d; want <= budget %d", got.Bytes, got.Budget)
	}
	return got
}

// checkGet reports a Get of ns/key that does not return want (nil: a miss).
func checkGet(t *testing.T, c *cache.Cache, ns, key string, want *Entry) {
	t.Helper()
	got, ok := c.Get(ns, key)
	switch {
	case want == nil && ok:
		t.Errorf("Get(%q, %q) = %+v, true; want a miss", ns, key, got)
	case want != nil && (!ok || got != *want):
		t.Errorf("Get(%q, %q) = %+v, %v; want %+v, true", ns, key, got, ok, *want)
	}
}

func TestGet(t *testing.T) {
	c := cache.New(1 << 20)
	checkGet(t, c, "ns", "k", nil)
	want := Entry{Value: "v", ExpiresAt: 42}
	put(c, "ns", "k", want)
	checkGet(t, c, "ns", "k", &want)
	misses := []nsKey{{"ns", "K"}, {"ns", "k "}, {"NS", "k"}, {"", "k"}, {"ns", ""}, {"nsk", ""}, {"", "nsk"}, {"k", "ns"}}
	for _, k := range misses {
		checkGet(t, c, k.ns, k.key, nil)
	}
	recount(t, c, append(misses, nsKey{"ns", "k"}))
}

func TestPutReplaces(t *testing.T) {
	tests := []struct {
		name          string
		first, second Entry
	}{
		{"value", Entry{Value: "old"}, Entry{Value: "new"}},
		{"longer", Entry{Value: "a"}, Entry{Value: strings.Repeat("b", 100)}},
		{"shorter", Entry{Value: strings.Repeat("b", 100)}, Entry{Value: "a"}},
		{"same value new expiry", Entry{Value: "v", ExpiresAt: 1}, Entry{Value: "v", ExpiresAt: 2}},
		{"expiry dropped", Entry{Value: "v", ExpiresAt: 5}, Entry{Value: "v"}},
		{"value to absent", Entry{Value: "v", ExpiresAt: 5}, Entry{Absent: true}},
		{"absent to value", Entry{Absent: true}, Entry{Value: "v"}},
		{"value to empty value", Entry{Value: "v"}, Entry{Value: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(1 << 20)
			put(c, "ns", "k", tt.first)
			put(c, "ns", "k", tt.second)
			checkGet(t, c, "ns", "k", &tt.second)
			want := cache.Stats{Entries: 1, Namespaces: 1, Bytes: nsBytes("ns") + entryBytes("k", tt.second), Budget: 1 << 20}
			if got := c.Stats(); got != want {
				t.Errorf("Stats() = %+v; want %+v", got, want)
			}
		})
	}
}

func TestAbsent(t *testing.T) {
	c := cache.New(1 << 20)
	put(c, "ns", "gone", Entry{Absent: true})
	put(c, "ns", "empty", Entry{Value: ""})
	checkGet(t, c, "ns", "gone", &Entry{Absent: true})
	checkGet(t, c, "ns", "empty", &Entry{})
	want := cache.Stats{Entries: 2, Namespaces: 1, Budget: 1 << 20,
		Bytes: nsBytes("ns") + entryBytes("gone", Entry{}) + entryBytes("empty", Entry{})}
	if got := c.Stats(); got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
}

func TestRemove(t *testing.T) {
	c := cache.New(1 << 20)
	universe := []nsKey{{"ns", "a"}, {"ns", "b"}, {"other", "a"}, {"ns", "missing"}, {"nowhere", "a"}}
	put(c, "ns", "a", Entry{Value: "1"})
	put(c, "ns", "b", Entry{Value: "2"})
	put(c, "other", "a", Entry{Value: "3"})

	c.Remove("ns", "a")
	checkGet(t, c, "ns", "a", nil)
	checkGet(t, c, "ns", "b", &Entry{Value: "2"})
	checkGet(t, c, "other", "a", &Entry{Value: "3"})
	c.Remove("ns", "missing")
	c.Remove("nowhere", "a")
	c.Remove("ns", "a")
	recount(t, c, universe)

	c.Remove("ns", "b")
	c.Remove("other", "a")
	if st := recount(t, c, universe); st.Entries != 0 || st.Namespaces != 0 || st.Bytes != 0 {
		t.Errorf("Stats() after removing every key = %+v; want no entries, namespaces or bytes", st)
	}
}

// trickyKeys are pairs that a cache joining namespace and key into one
// string, or matching names as patterns, would confuse.
var trickyKeys = []nsKey{
	{"a:b", "c"}, {"a", "b:c"}, {"a", "b"}, {"ab", ""}, {"", "ab"},
	{"a/b", "c"}, {"a", "b/c"}, {"a\x00b", "c"}, {"a", "b\x00c"}, {"a\x00", "b"}, {"a", "\x00b"},
	{"%", "x"}, {"_", "x"}, {"a%", "x"}, {"a_", "x"}, {"*", "x"}, {"", "x"}, {"x", ""}, {"", ""},
	{"a", "%"}, {"a", "_"}, {"A", "b"}, {"a ", "b"}, {"é", "x"}, {"e\u0301", "x"},
}

func trickyValue(i int) Entry {
	if i == 3 {
		return Entry{Value: ""} // a present, empty value
	}
	return Entry{Value: fmt.Sprintf("value %d", i), ExpiresAt: int64(i)}
}

func TestNamespaceIsolation(t *testing.T) {
	fill := func() *cache.Cache {
		c := cache.New(1 << 20)
		for i, k := range trickyKeys {
			put(c, k.ns, k.key, trickyValue(i))
		}
		return c
	}
	c := fill()
	for i, k := range trickyKeys {
		want := trickyValue(i)
		checkGet(t, c, k.ns, k.key, &want)
	}
	recount(t, c, trickyKeys)

	namespaces := make(map[string]bool)
	for _, k := range trickyKeys {
		namespaces[k.ns] = true
	}
	for ns := range namespaces {
		t.Run(fmt.Sprintf("RemoveNamespace(%q)", ns), func(t *testing.T) {
			c := fill()
			removeNamespace(c, ns)
			for i, k := range trickyKeys {
				if k.ns == ns {
					checkGet(t, c, k.ns, k.key, nil)
				} else {
					want := trickyValue(i)
					checkGet(t, c, k.ns, k.key, &want)
				}
			}
			if st := recount(t, c, trickyKeys); st.Namespaces != len(namespaces)-1 {
				t.Errorf("Stats().Namespaces = %d; want %d", st.Namespaces, len(namespaces)-1)
			}
		})
	}
	for i, k := range trickyKeys {
		t.Run(fmt.Sprintf("Remove(%q,%q)", k.ns, k.key), func(t *testing.T) {
			c := fill()
			c.Remove(k.ns, k.key)
			for j, o := range trickyKeys {
				if i == j {
					checkGet(t, c, o.ns, o.key, nil)
				} else {
					want := trickyValue(j)
					checkGet(t, c, o.ns, o.key, &want)
				}
			}
			recount(t, c, trickyKeys)
		})
	}
	t.Run("RemoveNamespace(missing)", func(t *testing.T) {
		c := fill()
		before := c.Stats()
		removeNamespace(c, "a:")
		removeNamespace(c, "b")
		removeNamespace(c, "a\x00b\x00")
		if got := recount(t, c, trickyKeys); got != before {
			t.Errorf("Stats() after removing missing namespaces = %+v; want %+v", got, before)
		}
	})
}

func TestClear(t *testing.T) {
	c := cache.New(1 << 20)
	for i, k := range trickyKeys {
		put(c, k.ns, k.key, trickyValue(i))
	}
	c.Clear()
	for _, k := range trickyKeys {
		checkGet(t, c, k.ns, k.key, nil)
	}
	if st := c.Stats(); st.Entries != 0 || st.Namespaces != 0 || st.Bytes != 0 {
		t.Errorf("Stats() after Clear = %+v; want no entries, namespaces or bytes", st)
	}
	put(c, "a", "b", Entry{Value: "again"})
	checkGet(t, c, "a", "b", &Entry{Value: "again"})
	recount(t, c, trickyKeys)
}

// TestModel runs random Puts, Removes, RemoveNamespaces and Clears on a
// budget large enough never to evict, over enough keys to grow and shrink
// any table the cache keeps, and compares every key with a reference map
// after each step of a sample and at the end.
func TestModel(t *testing.T) {
	const spaces, keys = 8, 600
	c := cache.New(1 << 40)
	model := make(map[nsKey]Entry)
	var universe []nsKey
	// Names of many lengths: keys short and long enough for every way the
	// cache may hold a key (here from 2 to 50 bytes), and namespaces of
	// different lengths.
	for n := range spaces {
		for i := range keys {
			ns := fmt.Sprint("ns", strings.Repeat("-", n*5), n)
			universe = append(universe, nsKey{ns, fmt.Sprint("k", i) + strings.Repeat("-", i%48)})
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(step int) {
		t.Helper()
		for _, k := range universe {
			got, ok := c.Get(k.ns, k.key)
			want, inModel := model[k]
			if ok != inModel || got != want {
				t.Fatalf("step %d: Get(%q, %q) = %+v, %v; want %+v, %v", step, k.ns, k.key, got, ok, want, inModel)
			}
		}
		if st := c.Stats(); st.Entries != len(model) {
			t.Fatalf("step %d: Stats().Entries = %d; want %d", step, st.Entries, len(model))
		}
	}
	for step := range 20000 {
		k := universe[rng.IntN(len(universe))]
		// Phases of growth and of shrinking, so that tables grow, fill
		// with removed slots and shrink again.
		grow := step/4000%2 == 0
		switch r := rng.IntN(1000); {
		case r < 700 && grow, r < 250:
			e := Entry{Value: fmt.Sprint(step), ExpiresAt: int64(step % 3)}
			if r%7 == 0 {
				e = Entry{Absent: true}
			}
			put(c, k.ns, k.key, e)
			model[k] = e
		case r < 995:
			c.Remove(k.ns, k.key)
			delete(model, k)
		case r < 999:
			removeNamespace(c, k.ns)
			for mk := range model {
				if mk.ns == k.ns {
					delete(model, mk)
				}
			}
		default:
			c.Clear()
			clear(model)
		}
		if step%1000 == 0 {
			check(step)
		}
	}
	check(20000)
	if st := recount(t, c, universe); st.Evictions != 0 {
		t.Errorf("Stats().Evictions = %d with an unbounded budget; want 0", st.Evictions)
	}
}

// TestLongestKey checks the longest key the cache holds, 1<<24 - 1 bytes,
// and that a longer one is not cached and leaves the others alone.
func TestLongestKey(t *testing.T) {
	c := cache.New(1 << 27)
	long := strings.Repeat("k", 1<<24)
	want := Entry{Value: "v"}
	has := func(key string) bool {
		t.Helper()
		got, ok := c.Get("ns", key)
		if ok && got != want {
			t.Errorf("Get of a %d-byte key = %+v; want %+v", len(key), got, want)
		}
		return ok
	}
	longest, other := long[1:], "x"+long[2:]
	put(c, "ns", longest, want)
	put(c, "ns", other, want)
	if !has(longest) || !has(other) {
		t.Fatalf("Put of two %d-byte keys: Get misses; want both cached", len(longest))
	}
	put(c, "ns", long, want)
	put(c, "ns", other+"x", want)
	if has(long) || has(other+"x") {
		t.Errorf("Put of a %d-byte key: cached; want not", len(long))
	}
	if !has(longest) || !has(other) {
		t.Errorf("%d-byte keys lost by Puts of longer ones", len(longest))
	}
	if st := c.Stats(); st.Entries != 2 {
		t.Errorf("Stats().Entries = %d; want 2", st.Entries)
	}
}

func TestStats(t *testing.T) {
	if nsOverhead <= 0 {
		t.Fatalf("a namespace costs %d bytes on top of its name; want > 0", nsOverhead)
	}
	tests := []struct {
		name string
		keys []nsKey
	}{
		{"empty", nil},
		{"one", []nsKey{{"ns", "k"}}},
		{"one namespace", []nsKey{{"ns", "a"}, {"ns", "b"}, {"ns", "c"}}},
		{"three namespaces", []nsKey{{"a", "x"}, {"bb", "x"}, {"cccccccc", "x"}, {"a", "y"}}},
		{"empty names", []nsKey{{"", ""}, {"", "k"}, {"ns", ""}}},
		{"repeated key", []nsKey{{"ns", "k"}, {"ns", "k"}, {"ns", "k"}}},
		{"long names", []nsKey{{strings.Repeat("n", 300), strings.Repeat("k", 500)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(1 << 20)
			last := make(map[nsKey]Entry)
			for i, k := range tt.keys {
				e := Entry{Value: strings.Repeat("v", i)}
				put(c, k.ns, k.key, e)
				last[k] = e
			}
			want := cache.Stats{Budget: 1 << 20}
			seen := make(map[string]bool)
			for k, e := range last {
				want.Entries++
				want.Bytes += entryBytes(k.key, e)
				if !seen[k.ns] {
					seen[k.ns] = true
					want.Namespaces++
					want.Bytes += nsBytes(k.ns)
				}
			}
			if got := c.Stats(); got != want {
				t.Errorf("Stats() = %+v; want %+v", got, want)
			}
		})
	}
}

func TestGetAllocs(t *testing.T) {
	c := cache.New(1 << 20)
	for i := range 100 {
		put(c, "ns", fmt.Sprint("k", i), Entry{Value: "value", ExpiresAt: 1})
	}
	put(c, "ns", "hit", Entry{Value: "value", ExpiresAt: 1})
	tests := []struct{ ns, key string }{{"ns", "hit"}, {"ns", "miss"}, {"nowhere", "hit"}}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.key, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, func() { c.Get(tt.ns, tt.key) }); got != 0 {
				t.Errorf("Get(%q, %q) allocates %v times per call; want 0", tt.ns, tt.key, got)
			}
		})
	}
}

// TestConcurrent runs Get, Fill, Put, Remove, RemoveNamespace and Clear
// from many goroutines on a budget of a few entries, against a reference
// store. As opstate does, a write goes to the store first and then to the
// cache, writes are serialized, and a reader that misses takes a Token,
// reads the store and Fills. Invariants:
//   - every hit holds a value written for that very key;
//   - whenever no write is in flight (checked during the run and at the
//     end), every cached entry equals the store's state for its key — even
//     with Fills running: a Fill whose token predates the last write must
//     be refused — and Stats().Bytes is within the budget and equals the
//     bytes of what is cached.
func TestConcurrent(t *testing.T) {
	const (
		budget     = 3 << 10
		goroutines = 8
		spaces     = 4
		keys       = 12
	)
	ops := 20000
	if testing.Short() {
		ops = 2000
	}
	c := cache.New(budget)
	var universe []nsKey
	// Names of many lengths: keys short and long enough for every way the
	// cache may hold a key (here from 2 to 50 bytes), and namespaces of
	// different lengths.
	for n := range spaces {
		for i := range keys {
			ns := fmt.Sprint("ns", strings.Repeat("-", n*5), n)
			universe = append(universe, nsKey{ns, fmt.Sprint("k", i) + strings.Repeat("-", i%48)})
		}
	}

	var (
		writeMu sync.Mutex // serializes writes: store, then cache
		storeMu sync.RWMutex
		store   = make(map[nsKey]string) // guarded by storeMu
		seq     atomic.Int64             // makes every value written distinct
	)
	// checkStore reports every key whose cached state differs from the
	// store's. The caller holds writeMu.
	checkStore := func() {
		storeMu.RLock()
		defer storeMu.RUnlock()
		for _, k := range universe {
			e, ok := c.Get(k.ns, k.key)
			if !ok {
				continue
			}
			v, found := store[k]
			if e.Absent == found || e.Value != v {
				t.Errorf("Get(%q, %q) = {%.30q absent=%v}; store holds %.30q (found=%v)", k.ns, k.key, e.Value, e.Absent, v, found)
			}
		}
	}
	newValue := func(rng *rand.Rand, k nsKey) string {
		v := fmt.Sprintf("%s/%s/%d/", k.ns, k.key, seq.Add(1))
		if rng.IntN(50) == 0 {
			return v + strings.Repeat("L", budget) // too large to cache
		}
		return v + strings.Repeat("x", rng.IntN(80))
	}

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for range ops {
				k := universe[rng.IntN(len(universe))]
				switch r := rng.IntN(100); {
				case r < 50:
					e, ok := c.Get(k.ns, k.key)
					if ok && !e.Absent && !strings.HasPrefix(e.Value, k.ns+"/"+k.key+"/") {
						t.Errorf("Get(%q, %q) = %.40q; want a value written for that key", k.ns, k.key, e.Value)
					}
					if ok {
						continue
					}
					tok := c.Token(k.ns, k.key)
					storeMu.RLock()
					v, found := store[k]
					storeMu.RUnlock()
					runtime.Gosched() // a slow read: let writers in
					c.Fill(k.ns, k.key, Entry{Value: v, Absent: !found}, tok)
				case r < 80:
					writeMu.Lock()
					v := newValue(rng, k)
					storeMu.Lock()
					store[k] = v
					storeMu.Unlock()
					put(c, k.ns, k.key, Entry{Value: v})
					writeMu.Unlock()
				case r < 92:
					writeMu.Lock()
					storeMu.Lock()
					delete(store, k)
					storeMu.Unlock()
					c.Remove(k.ns, k.key)
					writeMu.Unlock()
				case r < 97:
					writeMu.Lock()
					storeMu.Lock()
					for sk := range store {
						if sk.ns == k.ns {
							delete(store, sk)
						}
					}
					storeMu.Unlock()
					removeNamespace(c, k.ns)
					writeMu.Unlock()
				case r < 98:
					writeMu.Lock()
					c.Clear()
					writeMu.Unlock()
				default:
					writeMu.Lock()
					if st := c.Stats(); st.Bytes > budget || st.Bytes < 0 {
						t.Errorf("Stats().Bytes = %d during the run; want 0..%d", st.Bytes, budget)
					}
					checkStore()
					writeMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()

	checkStore()
	recount(t, c, universe)
}

func benchCache(b *testing.B) (*cache.Cache, []string) {
	b.Helper()
	c := cache.New(64 << 20)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("key", i)
		put(c, "ns", keys[i], Entry{Value: "some value of a realistic length"})
	}
	return c, keys
}

func BenchmarkGet(b *testing.B) {
	c, keys := benchCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if _, ok := c.Get("ns", keys[i%len(keys)]); ok {
			hits++
		}
	}
	b.ReportMetric(float64(hits)/float64(b.N), "hits/op")
}

func BenchmarkGetParallel(b *testing.B) {
	c, keys := benchCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	var hits, total atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		var h, n int64
		for pb.Next() {
			if _, ok := c.Get("ns", keys[i%len(keys)]); ok {
				h++
			}
			n++
			i++
		}
		hits.Add(h)
		total.Add(n)
	})
	b.ReportMetric(float64(hits.Load())/float64(max(total.Load(), 1)), "hits/op")
}
