package storetest

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testSeed tests the seed API: reads, writes, listing, and the errors of
// bad input and of a closed Store.
func testSeed(t *testing.T, c Config) {
	// Each semantic holds for what the cache serves and for what the
	// database serves.
	for _, mode := range []struct {
		name  string
		bytes int64
	}{{"cached", 0}, {"uncached", -1}} {
		t.Run("GetSetDelete/"+mode.name, func(t *testing.T) {
			opts := realTime()
			opts.CacheBytes = mode.bytes
			testGetSetDelete(t, open(t, c.New(t), opts))
		})
	}
	t.Run("DeleteNamespace", func(t *testing.T) { testDeleteNamespace(t, c) })
	t.Run("List", func(t *testing.T) { testList(t, c) })
	t.Run("Namespaces", func(t *testing.T) { testNamespaces(t, c) })
	t.Run("EmptyName", func(t *testing.T) { testEmptyName(t, c) })
	t.Run("InvalidTTL", func(t *testing.T) { testInvalidTTL(t, c) })
	t.Run("NanosecondTTL", func(t *testing.T) { testNanosecondTTL(t, c) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, c) })
}

// testGetSetDelete: a missing key reads as "", not found; an empty value
// is a value; Set replaces; Delete removes, and of a missing key is no
// error; namespaces are apart.
func testGetSetDelete(t *testing.T, s *opstate.Store) {
	wantLookup(t, s, "ns", "missing", "", false)
	mustSet(t, s, "ns", "empty", "")
	wantLookup(t, s, "ns", "empty", "", true)
	mustSet(t, s, "ns", "k", "v1")
	mustSet(t, s, "other", "k", "elsewhere")
	wantLookup(t, s, "ns", "k", "v1", true)
	mustSet(t, s, "ns", "k", "v2")
	wantLookup(t, s, "ns", "k", "v2", true)
	if err := s.Delete("ns", "k"); err != nil {
		t.Fatalf("Delete(ns, k) = %v", err)
	}
	wantLookup(t, s, "ns", "k", "", false)
	wantLookup(t, s, "other", "k", "elsewhere", true)
	if err := s.Delete("ns", "k"); err != nil {
		t.Errorf("Delete of a deleted key = %v; want nil", err)
	}
	if err := s.Delete("ns", "never"); err != nil {
		t.Errorf("Delete of a missing key = %v; want nil", err)
	}
	mustSet(t, s, "ns", "k", "again")
	wantLookup(t, s, "ns", "k", "again", true)
}

// testDeleteNamespace: every key of the namespace goes, from the cache as
// from the database, and nothing of namespaces that share a prefix or
// differ in case.
func testDeleteNamespace(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	for _, ns := range []string{"a", "ab", "A", "b"} {
		mustSet(t, s, ns, "x", ns+"-x")
		mustSet(t, s, ns, "y", ns+"-y")
	}
	wantLookup(t, s, "a", "x", "a-x", true) // cached, in case the write did not
	if err := s.DeleteNamespace("a"); err != nil {
		t.Fatalf("DeleteNamespace(a) = %v", err)
	}
	fresh := open(t, o, realTime())
	for _, r := range []*opstate.Store{s, fresh} {
		wantLookup(t, r, "a", "x", "", false)
		wantLookup(t, r, "a", "y", "", false)
		wantList(t, r, "a", map[string]string{})
		for _, ns := range []string{"ab", "A", "b"} {
			wantLookup(t, r, ns, "x", ns+"-x", true)
			wantList(t, r, ns, map[string]string{"x": ns + "-x", "y": ns + "-y"})
		}
	}
	for _, ns := range []string{"a", "never"} {
		if err := s.DeleteNamespace(ns); err != nil {
			t.Errorf("DeleteNamespace(%q) of an empty namespace = %v; want nil", ns, err)
		}
	}
	mustSet(t, s, "a", "x", "back")
	wantLookup(t, s, "a", "x", "back", true)
}

// testList: List returns exactly the live keys of its namespace, empty
// values included, and an empty map, never nil, for an empty one.
func testList(t *testing.T, c Config) {
	s := open(t, c.New(t), realTime())
	wantList(t, s, "ns", map[string]string{})
	mustSet(t, s, "ns", "a", "1")
	mustSet(t, s, "ns", "b", "")
	mustSet(t, s, "ns", "c", "3")
	mustSet(t, s, "ns", "c", "3b")
	mustSet(t, s, "ns", "gone", "x")
	mustSetTTL(t, s, "ns", "ttl", "t", time.Hour)
	mustSet(t, s, "ns2", "a", "other")
	mustSet(t, s, "n", "s", "prefix")
	if err := s.Delete("ns", "gone"); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, "ns", map[string]string{"a": "1", "b": "", "c": "3b", "ttl": "t"})
	wantList(t, s, "ns2", map[string]string{"a": "other"})
	wantList(t, s, "missing", map[string]string{})
}

// testNamespaces: every namespace with live keys, with their number,
// sorted by name as bytes (uppercase before "_" before lowercase before
// multi-byte UTF-8, whatever the database's collation), and none whose
// keys are all gone.
func testNamespaces(t *testing.T, c Config) {
	s := open(t, c.New(t), realTime())
	wantNamespaces(t, s, nil)
	keys := map[string]int{"b": 2, "a": 1, "B": 3, "é": 1, "ä": 2, "_": 1, "a b": 1, "a-b": 1, "ab": 1, "Z": 1}
	for ns, n := range keys {
		for i := range n {
			mustSet(t, s, ns, string(rune('k'+i)), "")
		}
	}
	mustSetTTL(t, s, "b", "ttl", "", time.Hour) // a live key with an expiry counts
	mustSet(t, s, "emptied", "k", "v")
	mustSet(t, s, "dropped", "k", "v")
	if err := s.Delete("emptied", "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace("dropped"); err != nil {
		t.Fatal(err)
	}
	wantNamespaces(t, s, []opstate.Namespace{
		{Name: "B", Keys: 3}, {Name: "Z", Keys: 1}, {Name: "_", Keys: 1}, {Name: "a", Keys: 1},
		{Name: "a b", Keys: 1}, {Name: "a-b", Keys: 1}, {Name: "ab", Keys: 1}, {Name: "b", Keys: 3},
		{Name: "ä", Keys: 2}, {Name: "é", Keys: 1},
	})
}

// call is one method of a Store, called with given names.
type call struct {
	name string
	// names is how many names the method takes: 0, a namespace (1), or a
	// namespace and a key (2).
	names int
	do    func() error
}

// calls returns a call of every method of s that can fail, with the names
// ns and key where it takes them. backup is where Backup writes.
func calls(s *opstate.Store, ns, key, backup string) []call {
	ctx := context.Background()
	return []call{
		{"Get", 2, func() error { _, err := s.Get(ns, key); return err }},
		{"Lookup", 2, func() error { _, _, err := s.Lookup(ns, key); return err }},
		{"Set", 2, func() error { return s.Set(ns, key, "v") }},
		{"SetWithTTL", 2, func() error { return s.SetWithTTL(ns, key, "v", time.Hour) }},
		{"Delete", 2, func() error { return s.Delete(ns, key) }},
		{"SetIfAbsent", 2, func() error { return errOf(s.SetIfAbsent(ns, key, "v")) }},
		{"SetIfAbsentWithTTL", 2, func() error { return errOf(s.SetIfAbsentWithTTL(ns, key, "v", time.Hour)) }},
		{"CompareAndSwap", 2, func() error { return errOf(s.CompareAndSwap(ns, key, "old", "v")) }},
		{"CompareAndSwapWithTTL", 2, func() error { return errOf(s.CompareAndSwapWithTTL(ns, key, "old", "v", time.Hour)) }},
		{"CompareAndDelete", 2, func() error { return errOf(s.CompareAndDelete(ns, key, "old")) }},
		{"DeleteNamespace", 1, func() error { return s.DeleteNamespace(ns) }},
		{"List", 1, func() error { _, err := s.List(ns); return err }},
		{"Watch", 1, func() error {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := s.Watch(wctx, ns)
			return err
		}},
		{"Namespaces", 0, func() error { _, err := s.Namespaces(); return err }},
		{"DeleteExpired", 0, func() error { _, err := s.DeleteExpired(ctx); return err }},
		{"Backup", 0, func() error { return s.Backup(ctx, backup) }},
	}
}

// testEmptyName: every method given an empty namespace or key returns
// ErrEmptyName and changes nothing.
func testEmptyName(t *testing.T, c Config) {
	s := open(t, c.New(t), realTime())
	mustSet(t, s, "ns", "k", "held")
	for _, tc := range []struct {
		ns, key string
		names   int // calls taking at least this many names
	}{{"", "k", 1}, {"ns", "", 2}, {"", "", 1}} {
		for _, cl := range calls(s, tc.ns, tc.key, "") {
			if cl.names < tc.names {
				continue
			}
			if err := cl.do(); !errors.Is(err, opstate.ErrEmptyName) {
				t.Errorf("%s(%q, %q) = %v; want ErrEmptyName", cl.name, tc.ns, tc.key, err)
			}
		}
	}
	wantList(t, s, "ns", map[string]string{"k": "held"})
	wantNamespaces(t, s, []opstate.Namespace{{Name: "ns", Keys: 1}})
}

// testInvalidTTL: the methods that set an expiry refuse a ttl <= 0 with
// ErrInvalidTTL and change nothing.
func testInvalidTTL(t *testing.T, c Config) {
	clk := newClock()
	s := open(t, c.New(t), fakeTime(clk))
	mustSet(t, s, "ns", "held", "old")
	for _, ttl := range []time.Duration{0, -time.Nanosecond, -time.Hour, math.MinInt64} {
		if err := s.SetWithTTL("ns", "absent", "v", ttl); !errors.Is(err, opstate.ErrInvalidTTL) {
			t.Errorf("SetWithTTL(ttl %v) = %v; want ErrInvalidTTL", ttl, err)
		}
		if ok, err := s.SetIfAbsentWithTTL("ns", "absent", "v", ttl); ok || !errors.Is(err, opstate.ErrInvalidTTL) {
			t.Errorf("SetIfAbsentWithTTL(ttl %v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
		}
		if ok, err := s.CompareAndSwapWithTTL("ns", "held", "old", "v", ttl); ok || !errors.Is(err, opstate.ErrInvalidTTL) {
			t.Errorf("CompareAndSwapWithTTL(ttl %v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
		}
	}
	wantList(t, s, "ns", map[string]string{"held": "old"})
	clk.Advance(100 * 365 * 24 * time.Hour)
	wantLookup(t, s, "ns", "absent", "", false)
	wantLookup(t, s, "ns", "held", "old", true) // no expiry was given to it
}

// testNanosecondTTL: a TTL of a nanosecond is a TTL (rounded up to a
// millisecond): the write is stored and the key lives until the Store's
// clock has moved a millisecond.
func testNanosecondTTL(t *testing.T, c Config) {
	clk := newClock()
	s := open(t, c.New(t), fakeTime(clk))
	mustSet(t, s, "ns", "swap", "old")
	if err := s.SetWithTTL("ns", "set", "v", time.Nanosecond); err != nil {
		t.Errorf("SetWithTTL(1ns) = %v; want nil", err)
	}
	if ok, err := s.SetIfAbsentWithTTL("ns", "sia", "v", time.Nanosecond); !ok || err != nil {
		t.Errorf("SetIfAbsentWithTTL(1ns) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.CompareAndSwapWithTTL("ns", "swap", "old", "v", time.Nanosecond); !ok || err != nil {
		t.Errorf("CompareAndSwapWithTTL(1ns) = %v, %v; want true, nil", ok, err)
	}
	for _, k := range []string{"set", "sia", "swap"} {
		wantLookup(t, s, "ns", k, "v", true)
	}
	clk.Advance(time.Millisecond)
	for _, k := range []string{"set", "sia", "swap"} {
		wantLookup(t, s, "ns", k, "", false)
	}
}

// testClosed: Close closes the channels of watches; after it every
// method returns ErrClosed, bad names or not, and a second Close returns
// nil.
func testClosed(t *testing.T, c Config) {
	s, err := c.New(t)(realTime())
	if err != nil {
		t.Fatalf("open = %v", err)
	}
	mustSet(t, s, "ns", "k", "v")
	ch, err := s.Watch(context.Background(), "ns")
	if err != nil {
		t.Fatalf("Watch = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	wantClosed(t, ch, "after Close")
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	for _, names := range [][2]string{{"ns", "k"}, {"", ""}} {
		for _, cl := range calls(s, names[0], names[1], backup) {
			if err := cl.do(); !errors.Is(err, opstate.ErrClosed) {
				t.Errorf("%s(%q, %q) after Close = %v; want ErrClosed", cl.name, names[0], names[1], err)
			}
		}
	}
}
