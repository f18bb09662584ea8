package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testCoherence: a write by Store B to a key that Store A has cached (a
// value, or the answer "absent") is served by A within Lag: A drops what
// it cached, not only reads what it never had. Keys whose names a change
// notification must escape, or cannot carry (9000 bytes), count too.
func testCoherence(t *testing.T, c Config) {
	type nk struct{ ns, key string }
	long := strings.Repeat("n", 9000)
	var (
		k       = nk{"co", "k"}
		gone    = nk{"co", "gone"}
		ttl     = nk{"co", "ttl"}
		absent  = nk{"co", "absent"}
		quoted  = nk{"co", "q\"u'o\\te\n🔥%_"}
		longKey = nk{"co", long}
		longNS  = nk{long, "k"}
		x, y    = nk{"ns", "x"}, nk{"ns", "y"}
	)
	o := c.New(t)
	b := open(t, o, realTime())
	for _, k := range []nk{k, gone, ttl, quoted, longKey, longNS, x, y} {
		mustSet(t, b, k.ns, k.key, "old")
	}
	// A, opened after those writes, has no news of them to come that
	// would drop what it caches now.
	a := open(t, o, realTime())
	for _, k := range []nk{k, gone, ttl, quoted, longKey, longNS, x, y} {
		wantLookup(t, a, k.ns, k.key, "old", true)
	}
	wantLookup(t, a, absent.ns, absent.key, "", false)

	steps := []struct {
		name  string
		write func() error
		keys  []nk
		value string
		ok    bool
	}{
		{"Set", func() error { return b.Set(k.ns, k.key, "new") }, []nk{k}, "new", true},
		{"Set of an absent key", func() error { return b.Set(absent.ns, absent.key, "new") }, []nk{absent}, "new", true},
		{"Delete", func() error { return b.Delete(gone.ns, gone.key) }, []nk{gone}, "", false},
		{"SetWithTTL", func() error { return b.SetWithTTL(ttl.ns, ttl.key, "new", time.Hour) }, []nk{ttl}, "new", true},
		{"CompareAndSwap", func() error { return errOf(b.CompareAndSwap(k.ns, k.key, "new", "newer")) }, []nk{k}, "newer", true},
		{"Set of a quoted key", func() error { return b.Set(quoted.ns, quoted.key, "new") }, []nk{quoted}, "new", true},
		{"Set of a long key", func() error { return b.Set(longKey.ns, longKey.key, "new") }, []nk{longKey}, "new", true},
		{"Set in a long namespace", func() error { return b.Set(longNS.ns, longNS.key, "new") }, []nk{longNS}, "new", true},
		{"DeleteNamespace", func() error { return b.DeleteNamespace(x.ns) }, []nk{x, y}, "", false},
	}
	for _, st := range steps {
		for _, k := range st.keys {
			cached(t, a, k.ns, k.key)
		}
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		since := time.Now()
		for _, k := range st.keys {
			err := poll(c.Lag, func() error {
				v, ok, err := a.Lookup(k.ns, k.key)
				if v != st.value || ok != st.ok || err != nil {
					return fmt.Errorf("Lookup(%.40q, %.40q) = %q, %v, %v; want %q, %v, nil", k.ns, k.key, v, ok, err, st.value, st.ok)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s by another Store: %v after %v; Lag is %v", st.name, err, time.Since(since).Round(time.Millisecond), c.Lag)
			}
		}
	}
}

// errOf drops the boolean of a conditional write.
func errOf(_ bool, err error) error { return err }

// cached reads ns/key through s, and checks that a second read is served
// from the cache: it counts a hit.
func cached(t *testing.T, s *opstate.Store, ns, key string) {
	t.Helper()
	if _, _, err := s.Lookup(ns, key); err != nil {
		t.Fatalf("Lookup(%.40q, %.40q) = %v", ns, key, err)
	}
	before := s.Stats().Hits
	if _, _, err := s.Lookup(ns, key); err != nil {
		t.Fatalf("Lookup(%.40q, %.40q) = %v", ns, key, err)
	}
	if after := s.Stats().Hits; after != before+1 {
		t.Fatalf("Lookup(%.40q, %.40q) counted %d cache hits; want 1: the key must be cached before the other Store writes it", ns, key, after-before)
	}
}
