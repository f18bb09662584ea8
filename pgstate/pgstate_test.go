package pgstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
)

// open opens a Store on dsn, closed at cleanup.
func open(t testing.TB, dsn string, opts opstate.Options) *opstate.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pgstate.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("pgstate.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond every millisecond until it holds or within has
// passed, and returns how long it took, failing the test if it never held.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func get(t testing.TB, s *opstate.Store, ns, key string) string {
	t.Helper()
	v, err := s.Get(ns, key)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", ns, key, err)
	}
	return v
}

func set(t testing.TB, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q): %v", ns, key, err)
	}
}

// TestCoherent checks the listener at work: a write by one Store drops
// just that key from another's cache, which then serves the new value
// within the bound, while a Store's own writes, which its listener skips,
// cost its cache nothing.
func TestCoherent(t *testing.T) {
	dsn := pgtest.Schema(t)
	a := open(t, dsn, opstate.Options{})
	b := open(t, dsn, opstate.Options{})
	set(t, a, "ns", "k", "v1")
	set(t, a, "ns", "other", "x")
	if got := get(t, a, "ns", "k"); got != "v1" {
		t.Fatalf("Get = %q; want v1", got)
	}
	get(t, a, "ns", "other")
	before := a.Stats()
	set(t, b, "ns", "k", "v2")
	eventually(t, 2*time.Second, "a serves b's write", func() bool { return get(t, a, "ns", "k") == "v2" })
	get(t, a, "ns", "other")
	after := a.Stats()
	if d := after.Invalidations - before.Invalidations; d != 1 {
		t.Errorf("b's write of one key invalidated %d entries of a's cache; want 1", d)
	}
	// a's own writes: its cache keeps them, and nothing is invalidated.
	for i := range 50 {
		set(t, a, "ns", "own", string(rune('a'+i%26)))
	}
	time.Sleep(200 * time.Millisecond) // the notifications of a's writes arrive meanwhile
	st := a.Stats()
	if got := get(t, a, "ns", "own"); got != string(rune('a'+49%26)) {
		t.Errorf("Get(own) = %q", got)
	}
	if d := a.Stats().Misses - st.Misses; d != 0 {
		t.Errorf("Get of a's own write missed the cache %d times; want 0", d)
	}
	if d := st.Invalidations - after.Invalidations; d != 0 {
		t.Errorf("a's own writes invalidated %d entries of its cache; want 0", d)
	}
	if d := st.Flushes - before.Flushes; d != 0 {
		t.Errorf("cache flushed %d times with the listener up; want 0", d)
	}
}
