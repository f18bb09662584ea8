package cache_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/cache"
)

// TestInsertIsCached checks that an entry that fits, once Put or reported
// cached by Fill, is there for the next Get, even when every other entry
// has been read since the last eviction: the entry just written is the most
// recently used of all and must not be the one evicted to make room for it.
func TestInsertIsCached(t *testing.T) {
	val := strings.Repeat("v", 10)
	const n = 8
	tests := []struct {
		name string
		// budget and prime build a full cache whose entries have all been read.
		budget int64
		prime  func(c *cache.Cache)
		ns     string // the namespace of the inserted key
	}{
		{
			name:   "same namespace",
			budget: nsBytes("ns") + n*entryBytes("k0", Entry{Value: val}),
			prime: func(c *cache.Cache) {
				for i := range n {
					put(c, "ns", fmt.Sprint("k", i), Entry{Value: val})
				}
				for i := range n {
					c.Get("ns", fmt.Sprint("k", i))
				}
			},
			ns: "ns",
		},
		{
			name:   "new namespace",
			budget: nsBytes("a") + nsBytes("b") + n*entryBytes("k0", Entry{Value: val}),
			prime: func(c *cache.Cache) {
				for i := range n / 2 {
					put(c, "a", fmt.Sprint("k", i), Entry{Value: val})
					put(c, "b", fmt.Sprint("k", i), Entry{Value: val})
				}
				c.Get("a", "k0")
				c.Get("b", "k0")
			},
			ns: "c",
		},
	}
	want := Entry{Value: val}
	for _, tt := range tests {
		t.Run(tt.name+"/Put", func(t *testing.T) {
			c := cache.New(tt.budget)
			tt.prime(c)
			put(c, tt.ns, "new", want)
			checkGet(t, c, tt.ns, "new", &want)
		})
		t.Run(tt.name+"/Fill", func(t *testing.T) {
			c := cache.New(tt.budget)
			tt.prime(c)
			if !c.Fill(tt.ns, "new", want, c.Token(tt.ns, "new")) {
				t.Fatalf("Fill(%q, %q) with a fresh token = false; want true", tt.ns, "new")
			}
			checkGet(t, c, tt.ns, "new", &want)
		})
	}
}

func TestBudget(t *testing.T) {
	const budget = 8 << 10
	c := cache.New(budget)
	rng := rand.New(rand.NewPCG(1, 2))
	written := make(map[nsKey]Entry)
	var universe []nsKey
	for i := range 5000 {
		k := nsKey{fmt.Sprint("ns", rng.IntN(20)), fmt.Sprint("key", rng.IntN(50))}
		e := Entry{Value: strings.Repeat("v", rng.IntN(300)), ExpiresAt: int64(i)}
		if rng.IntN(10) == 0 {
			e = Entry{Absent: true}
		}
		put(c, k.ns, k.key, e)
		if _, ok := written[k]; !ok {
			universe = append(universe, k)
		}
		written[k] = e
		if st := c.Stats(); st.Bytes > budget || st.Bytes < 0 {
			t.Fatalf("after %d Puts, Stats().Bytes = %d; want 0..%d", i+1, st.Bytes, budget)
		}
		if rng.IntN(4) == 0 {
			k := nsKey{fmt.Sprint("ns", rng.IntN(20)), fmt.Sprint("key", rng.IntN(50))}
			c.Get(k.ns, k.key)
		}
	}
	st := recount(t, c, universe)
	if st.Evictions == 0 {
		t.Errorf("Stats().Evictions = 0 after overfilling the budget; want > 0")
	}
	if st.Entries >= len(written) {
		t.Errorf("Stats().Entries = %d; want fewer than the %d keys put", st.Entries, len(written))
	}
	for k, want := range written {
		if got, ok := c.Get(k.ns, k.key); ok && got != want {
			t.Errorf("Get(%q, %q) = %+v; want the last Put %+v or a miss", k.ns, k.key, got, want)
		}
	}
}

// TestSecondChance fills one namespace exactly to the budget, reads its
// oldest entry (or not), and writes more keys, each twice, so that they
// are used more often than the old ones and displace them: the read entry
// must outlive the unread ones written after it, and the unread oldest go
// first.
func TestSecondChance(t *testing.T) {
	const n, more = 16, 8
	val := strings.Repeat("v", 10)
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	budget := nsBytes("ns") + n*entryBytes(key(0), Entry{Value: val})

	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprintf("read=%v", read), func(t *testing.T) {
			c := cache.New(budget)
			for i := range n {
				put(c, "ns", key(i), Entry{Value: val})
			}
			if st := c.Stats(); st.Entries != n || st.Evictions != 0 || st.Bytes != budget {
				t.Fatalf("Stats() after %d Puts = %+v; want %d entries, %d bytes, no evictions", n, st, n, budget)
			}
			if read {
				c.Get("ns", key(0))
			}
			for i := n; i < n+more; i++ {
				put(c, "ns", key(i), Entry{Value: val})
				put(c, "ns", key(i), Entry{Value: val})
			}
			if st := c.Stats(); st.Evictions != more || st.Entries != n {
				t.Errorf("Stats() = %+v; want %d evictions, %d entries", st, more, n)
			}
			// Read, key 0 is passed over and keys 1..more-1 go; unread,
			// keys 0..more-2 go. And key n-1, the window's when the new
			// keys came, leaves it as a candidate used no more often than
			// its victim, and goes. (Gets from here on change nothing: no
			// more evictions happen.)
			first := 0
			if read {
				checkGet(t, c, "ns", key(0), &Entry{Value: val})
				first = 1
			}
			for i := first; i < n+more; i++ {
				if i < first+more-1 || i == n-1 {
					checkGet(t, c, "ns", key(i), nil)
				} else {
					checkGet(t, c, "ns", key(i), &Entry{Value: val})
				}
			}
		})
	}
}

// TestNamespaceSecondChance writes namespace hot, then cold, reads one key
// of hot (or not), and writes to a third namespace: a read namespace keeps
// all its entries, read or not, while the cold one gives up entries.
func TestNamespaceSecondChance(t *testing.T) {
	const per = 4
	e := Entry{Value: strings.Repeat("v", 10)}
	key := func(i int) string { return fmt.Sprint("k", i) }
	budget := nsBytes("hot") + nsBytes("cold") + 2*per*entryBytes(key(0), e)

	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprintf("read=%v", read), func(t *testing.T) {
			c := cache.New(budget)
			for i := range per {
				put(c, "hot", key(i), e)
			}
			for i := range per {
				put(c, "cold", key(i), e)
			}
			if st := c.Stats(); st.Evictions != 0 {
				t.Fatalf("Stats().Evictions = %d before the budget was exceeded; want 0", st.Evictions)
			}
			if read {
				c.Get("hot", key(per-1))
			}
			put(c, "new", key(0), e)
			if st := c.Stats(); st.Evictions == 0 {
				t.Fatalf("Stats().Evictions = 0 after exceeding the budget; want > 0")
			}

			count := func(ns string) int {
				n := 0
				for i := range per {
					if _, ok := c.Get(ns, key(i)); ok {
						n++
					}
				}
				return n
			}
			hot, cold := count("hot"), count("cold")
			if read {
				if hot != per {
					t.Errorf("read namespace kept %d of %d entries; want all", hot, per)
				}
				if cold == per {
					t.Errorf("cold namespace kept all %d entries; want some evicted", per)
				}
			} else {
				if hot == per {
					t.Errorf("oldest unread namespace kept all %d entries; want some evicted", per)
				}
				if cold != per {
					t.Errorf("newer namespace kept %d of %d entries; want all", cold, per)
				}
			}
			checkGet(t, c, "new", key(0), &e)
		})
	}
}

func TestTooLarge(t *testing.T) {
	const budget = 4096
	const ns, key = "ns", "k"
	// The largest entry cached takes, with its namespace, half the budget.
	maxLen := int(budget/2 - nsBytes(ns) - entryBytes(key, Entry{}))
	universe := []nsKey{{ns, key}, {"keep", "k"}}

	tests := []struct {
		name   string
		valLen int
		cached bool
	}{
		{"small", 10, true},
		{"largest that fits", maxLen, true},
		{"one byte over", maxLen + 1, false},
		{"half the budget", budget / 2, false},
		{"the budget", budget, false},
		{"over the budget", 4 * budget, false},
	}
	for _, tt := range tests {
		for _, before := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/older cached=%v", tt.name, before), func(t *testing.T) {
				c := cache.New(budget)
				put(c, "keep", "k", Entry{Value: "other"})
				if before {
					put(c, ns, key, Entry{Value: "older"})
				}
				e := Entry{Value: strings.Repeat("x", tt.valLen)}
				put(c, ns, key, e)
				got, ok := c.Get(ns, key)
				switch {
				case tt.cached && (!ok || got != e):
					t.Errorf("Get after Put of %d bytes = %d bytes, %v; want the value, true", tt.valLen, len(got.Value), ok)
				case !tt.cached && ok:
					t.Errorf("Get after Put of %d bytes = %.10q (%d bytes), true; want a miss", tt.valLen, got.Value, len(got.Value))
				}
				checkGet(t, c, "keep", "k", &Entry{Value: "other"})
				st := recount(t, c, universe)
				if st.Evictions != 0 {
					t.Errorf("Stats().Evictions = %d; want 0", st.Evictions)
				}

				c.Remove(ns, key)
				if got := c.Fill(ns, key, e, c.Token(ns, key)); got != tt.cached {
					t.Errorf("Fill of %d bytes = %v; want %v", tt.valLen, got, tt.cached)
				}
				recount(t, c, universe)
			})
		}
	}
}

func TestZeroBudget(t *testing.T) {
	for _, budget := range []int64{0, -1, -1 << 40} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			c := cache.New(budget)
			put(c, "ns", "k", Entry{Value: "v"})
			put(c, "ns", "gone", Entry{Absent: true})
			put(c, "", "", Entry{})
			if c.Fill("ns", "f", Entry{Value: "v"}, c.Token("ns", "f")) {
				t.Errorf("Fill on a cache with budget %d = true; want false", budget)
			}
			for _, k := range []nsKey{{"ns", "k"}, {"ns", "gone"}, {"", ""}, {"ns", "f"}} {
				checkGet(t, c, k.ns, k.key, nil)
			}
			if got, want := c.Stats(), (cache.Stats{}); got != want {
				t.Errorf("Stats() = %+v; want %+v", got, want)
			}
		})
	}
}
