package cache_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/d8da9184/opstate/internal/cache"
)

// TestPending walks a write through the protocol the Store drives: Begin
// before the commit, End after it. While the write is pending its key is
// not served and no Fill of it succeeds, whatever token the filler holds;
// End caches the committed entry unless the write failed (nil), or the cache
// was cleared, or the key or a namespace removed, meanwhile (someone else
// may have written the key after the commit). A namespace write blocks the fills of every key until it ends.
func TestPending(t *testing.T) {
	const ns, key = "ns", "k"
	old := Entry{Value: "old"}
	committed := Entry{Value: "committed", ExpiresAt: 9}
	filled := Entry{Value: "filled"}
	tests := []struct {
		name string
		// during runs while the write is pending and returns Fill's result
		// of filled for ns/key, with a token it takes itself.
		during  func(c *cache.Cache) bool
		end     *Entry // what End gets
		wantGet *Entry // Get after End; nil: a miss
	}{
		{"committed", nil, &committed, &committed},
		{"failed", nil, nil, nil},
		{"fill while pending", func(c *cache.Cache) bool {
			return c.Fill(ns, key, filled, c.Token(ns, key))
		}, &committed, &committed},
		{"fill while pending, write failed", func(c *cache.Cache) bool {
			return c.Fill(ns, key, filled, c.Token(ns, key))
		}, nil, nil},
		{"cleared while pending", func(c *cache.Cache) bool {
			c.Clear()
			return c.Fill(ns, key, filled, c.Token(ns, key))
		}, &committed, nil},
		{"fill of another key while pending", func(c *cache.Cache) bool {
			c.Fill(ns, "other", filled, c.Token(ns, "other"))
			return false
		}, &committed, &committed},
		// Another connection changed the key, maybe after this write
		// committed: what it committed may not be what the key holds.
		{"removed while pending", func(c *cache.Cache) bool {
			c.Remove(ns, key)
			return c.Fill(ns, key, filled, c.Token(ns, key))
		}, &committed, nil},
		{"namespace removed while pending", func(c *cache.Cache) bool {
			c.RemoveNamespace(ns)
			return c.Fill(ns, key, filled, c.Token(ns, key))
		}, &committed, nil},
		{"another namespace removed while pending", func(c *cache.Cache) bool {
			c.RemoveNamespace("elsewhere")
			return false
		}, &committed, nil}, // conservative: RemoveNamespace counts as a clear
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(1 << 16)
			put(c, ns, key, old)
			before := c.Token(ns, key) // taken before the write began
			p := c.Begin(ns, key)
			checkGet(t, c, ns, key, nil) // dropped at Begin
			if tt.during != nil && tt.during(c) {
				t.Errorf("Fill while the write is pending succeeded; want refused")
			}
			checkGet(t, c, ns, key, nil)
			c.End(p, tt.end)
			checkGet(t, c, ns, key, tt.wantGet)
			if c.Fill(ns, key, filled, before) {
				t.Errorf("Fill with a token taken before the write succeeded after End; want refused")
			}
			checkGet(t, c, ns, key, tt.wantGet)
			recount(t, c, []nsKey{{ns, key}, {ns, "other"}})
		})
	}

	t.Run("two pending writes of one key", func(t *testing.T) {
		c := cache.New(1 << 16)
		p1, p2 := c.Begin(ns, key), c.Begin(ns, key)
		c.End(p1, nil) // superseded by the second
		if c.Fill(ns, key, filled, c.Token(ns, key)) {
			t.Errorf("Fill while the second write is pending succeeded; want refused")
		}
		c.End(p2, &committed)
		checkGet(t, c, ns, key, &committed)
	})

	t.Run("overlapping writes, the later one failed", func(t *testing.T) {
		c := cache.New(1 << 16)
		p1, p2 := c.Begin(ns, key), c.Begin(ns, key)
		c.End(p1, &old) // committed first
		c.End(p2, nil)  // committed second, then failed: the store may hold either
		checkGet(t, c, ns, key, nil)
	})

	t.Run("namespace write", func(t *testing.T) {
		c := cache.New(1 << 16)
		put(c, ns, key, old)
		put(c, "other", key, old)
		p := c.BeginNamespace(ns)
		checkGet(t, c, ns, key, nil)
		checkGet(t, c, "other", key, &old)
		// Fills of every key wait for the namespace write.
		for _, k := range []nsKey{{ns, key}, {"other", "new"}} {
			if c.Fill(k.ns, k.key, filled, c.Token(k.ns, k.key)) {
				t.Errorf("Fill(%q, %q) during a namespace write succeeded; want refused", k.ns, k.key)
			}
		}
		tok := c.Token(ns, key)
		c.End(p, &committed) // ignored for a namespace
		checkGet(t, c, ns, key, nil)
		if c.Fill(ns, key, filled, tok) {
			t.Errorf("Fill with a token taken during the namespace write succeeded after End; want refused")
		}
		if !c.Fill(ns, key, filled, c.Token(ns, key)) {
			t.Errorf("Fill after the namespace write ended was refused; want cached")
		}
		checkGet(t, c, ns, key, &filled)
	})
}

func TestFill(t *testing.T) {
	const ns, key = "ns", "k"
	filled := Entry{Value: "from store", ExpiresAt: 7}
	written := Entry{Value: "written"}
	tests := []struct {
		name    string
		setup   func(c *cache.Cache) // before the token is taken
		between func(c *cache.Cache) // after the token is taken, before Fill
		want    bool                 // Fill's result
		wantGet *Entry               // what Get returns afterwards; nil for a miss
	}{
		{"fresh token", nil, nil, true, &filled},
		{"fresh token over cached", func(c *cache.Cache) { put(c, ns, key, written) }, nil, true, &filled},
		{"fresh token over absent", func(c *cache.Cache) { put(c, ns, key, Entry{Absent: true}) }, nil, true, &filled},
		{"Put after token", nil, func(c *cache.Cache) { put(c, ns, key, written) }, false, &written},
		{"Put absent after token", nil, func(c *cache.Cache) { put(c, ns, key, Entry{Absent: true}) }, false, &Entry{Absent: true}},
		{"Put too large after token", func(c *cache.Cache) { put(c, ns, key, written) }, func(c *cache.Cache) {
			put(c, ns, key, Entry{Value: strings.Repeat("x", 1<<20)})
		}, false, nil},
		{"Remove after token", func(c *cache.Cache) { put(c, ns, key, written) }, func(c *cache.Cache) { c.Remove(ns, key) }, false, nil},
		{"Remove of uncached key after token", nil, func(c *cache.Cache) { c.Remove(ns, key) }, false, nil},
		{"RemoveNamespace after token", func(c *cache.Cache) { put(c, ns, key, written) }, func(c *cache.Cache) { removeNamespace(c, ns) }, false, nil},
		{"RemoveNamespace of uncached namespace after token", nil, func(c *cache.Cache) { removeNamespace(c, ns) }, false, nil},
		{"RemoveNamespace of another namespace after token", nil, func(c *cache.Cache) { removeNamespace(c, "other") }, false, nil},
		{"Clear after token", func(c *cache.Cache) { put(c, ns, key, written) }, func(c *cache.Cache) { c.Clear() }, false, nil},
		{"Clear of an empty cache after token", nil, func(c *cache.Cache) { c.Clear() }, false, nil},
		// A Fill is not a write: two readers holding the same token both
		// read the store after it was taken.
		{"another Fill after token", nil, func(c *cache.Cache) {
			c.Fill(ns, key, Entry{Value: "first fill"}, c.Token(ns, key))
		}, true, &filled},
		{"Get after token", func(c *cache.Cache) { put(c, ns, key, written) }, func(c *cache.Cache) { c.Get(ns, key) }, true, &filled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(1 << 16)
			if tt.setup != nil {
				tt.setup(c)
			}
			tok := c.Token(ns, key)
			if tt.between != nil {
				tt.between(c)
			}
			if got := c.Fill(ns, key, filled, tok); got != tt.want {
				t.Errorf("Fill(%q, %q) = %v; want %v", ns, key, got, tt.want)
			}
			checkGet(t, c, ns, key, tt.wantGet)
			recount(t, c, []nsKey{{ns, key}})
		})
	}

	// A write to another key may share the token's stripe and reject the
	// Fill, or not; either is allowed, but the result must be truthful and
	// the other key untouched.
	t.Run("Put to an unrelated key", func(t *testing.T) {
		c := cache.New(1 << 20)
		for i := range 200 {
			other := fmt.Sprint("other", i)
			tok := c.Token(ns, key)
			put(c, ns, other, written)
			if c.Fill(ns, key, filled, tok) {
				checkGet(t, c, ns, key, &filled)
			} else {
				checkGet(t, c, ns, key, nil)
			}
			checkGet(t, c, ns, other, &written)
			c.Remove(ns, key)
		}
	})
}

// TestFillsRacingWrites is a model test of the fencing: writers commit
// numbered versions of a few keys to a reference store through
// Begin/commit/End, ending the writes of a key in the order they committed
// (as the Store's single committing leader does), another writer commits
// behind the cache's back and then calls Clear (as the Store does when
// another process has written), and readers fill from the store after a
// miss, as the Store's read path does. Invariants, checked at every Get:
//   - a hit never returns a version older than the last one whose commit
//     had finished (End returned, or Clear returned after a foreign commit)
//     before the Get began: a slow fill never puts an old value back;
//   - a hit never returns a version that nobody has committed yet.
//
// When everything has stopped, every cached entry equals the store.
func TestFillsRacingWrites(t *testing.T) {
	const keys = 4
	rounds := 3000
	if testing.Short() {
		rounds = 500
	}
	c := cache.New(1 << 20)
	type key struct {
		endMu    sync.Mutex // held from commit to End by the cache's writers: Ends in commit order
		commitMu sync.Mutex // orders the commits of the key
		stored   atomic.Int64
		done     atomic.Int64 // highest version whose write has finished
	}
	var ks [keys]key
	name := func(k int) string { return fmt.Sprint("k", k) }
	var next atomic.Int64 // version numbers, increasing across all writers
	commit := func(k int) int64 {
		ks[k].commitMu.Lock()
		defer ks[k].commitMu.Unlock()
		v := next.Add(1)
		ks[k].stored.Store(v)
		return v
	}
	finish := func(k int, v int64) {
		for d := ks[k].done.Load(); d < v && !ks[k].done.CompareAndSwap(d, v); d = ks[k].done.Load() {
		}
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range rounds {
				k := (w + i) % keys
				p := c.Begin("ns", name(k))
				ks[k].endMu.Lock()
				v := commit(k)
				var e *Entry
				if i%7 != 0 { // sometimes as if the commit failed after all
					e = &Entry{Value: strconv.FormatInt(v, 10)}
				}
				c.End(p, e)
				ks[k].endMu.Unlock()
				finish(k, v)
			}
		})
	}
	wg.Go(func() { // a foreign writer
		for i := range rounds / 10 {
			k := i % keys
			v := commit(k)
			c.Clear()
			finish(k, v)
		}
	})
	var failed atomic.Bool
	for range 3 {
		wg.Go(func() {
			for i := range rounds * 2 {
				k := i % keys
				floor := ks[k].done.Load()
				e, hit := c.Get("ns", name(k))
				if !hit {
					tok := c.Token("ns", name(k))
					c.Fill("ns", name(k), Entry{Value: strconv.FormatInt(ks[k].stored.Load(), 10)}, tok)
					continue
				}
				v, err := strconv.ParseInt(e.Value, 10, 64)
				ceiling := ks[k].stored.Load()
				if err != nil || v < floor || v > ceiling {
					if failed.CompareAndSwap(false, true) {
						t.Errorf("Get(k%d) = %q; want a version from %d (finished before the Get) to %d (stored)", k, e.Value, floor, ceiling)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if e, hit := c.Get("ns", name(k)); hit && e.Value != strconv.FormatInt(ks[k].stored.Load(), 10) {
			t.Errorf("at rest, Get(k%d) = %q; want the store's %d", k, e.Value, ks[k].stored.Load())
		}
	}
}

// TestRemoveReports checks what Remove and RemoveNamespace report and that
// they make Fills in progress fail.
func TestRemoveReports(t *testing.T) {
	c := cache.New(1 << 16)
	put(c, "a", "1", Entry{Value: "v"})
	put(c, "a", "2", Entry{Absent: true})
	put(c, "b", "1", Entry{Value: "v"})
	tok := c.Token("a", "1")
	if !c.Remove("a", "1") {
		t.Errorf("Remove of a cached key = false; want true")
	}
	if c.Remove("a", "1") {
		t.Errorf("Remove of a key no longer cached = true; want false")
	}
	if c.Fill("a", "1", Entry{Value: "old"}, tok) {
		t.Errorf("Fill with a token taken before Remove succeeded")
	}
	tok = c.Token("b", "2")
	if n := c.RemoveNamespace("a"); n != 1 {
		t.Errorf("RemoveNamespace(a) = %d; want 1 (the negative entry)", n)
	}
	if c.Fill("b", "2", Entry{Value: "old"}, tok) {
		t.Errorf("Fill with a token taken before RemoveNamespace succeeded")
	}
	checkGet(t, c, "b", "1", &Entry{Value: "v"})
	if n := c.RemoveNamespace("missing"); n != 0 {
		t.Errorf("RemoveNamespace(missing) = %d; want 0", n)
	}
	recount(t, c, []nsKey{{"a", "1"}, {"a", "2"}, {"b", "1"}, {"b", "2"}})
}
