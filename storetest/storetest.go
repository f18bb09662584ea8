package storetest

import (
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// Opener opens a new Store on the database under test; every call of one
// Opener opens another Store on the same database.
type Opener func(opts opstate.Options) (*opstate.Store, error)

// Config describes the backend under test.
type Config struct {
	// New returns an Opener on a new, empty database of t's own.
	New func(t *testing.T) Opener
	// RefusesText: writes of a namespace, key or value with a NUL byte or
	// invalid UTF-8 fail with opstate.ErrInvalidText and store nothing
	// (PostgreSQL), instead of round-tripping byte for byte (SQLite).
	RefusesText bool
	// Lag bounds how long a write by one Store may take to be served by
	// another Store on the same database; the suite waits up to it.
	Lag time.Duration
}

// Run runs the suite, each part a subtest of t.
func Run(t *testing.T, c Config) {
	if c.New == nil {
		t.Fatal("storetest: Config.New is nil")
	}
	parts := []struct {
		name string
		run  func(*testing.T, Config)
	}{
		{"Seed", testSeed},
		{"TTL", testTTL},
		{"Conditional", testConditional},
		{"Watch", testWatch},
		{"Coherence", testCoherence},
		{"HostileText", testHostileText},
		{"Model", testModel},
		{"History", testHistory},
		{"Items", testItems},
	}
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) { p.run(t, c) })
	}
}

// settleBound is how long the suite waits for what the database judges by
// its own clock (expiry in List, Namespaces and sweeps) to catch up with a
// real TTL that has passed: far above what a working backend needs.
const settleBound = 10 * time.Second

// shortTTL is the real TTL of keys that must expire during a test, by
// the database's clock as well as the Store's.
const shortTTL = 300 * time.Millisecond

// open opens a Store with opts through o and closes it at the end of the
// test, failing the test if that Close fails.
func open(t *testing.T, o Opener, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := o(opts)
	if err != nil {
		t.Fatalf("open = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return s
}

// realTime is the Options of a Store on the real clock, without a
// background sweeper (the tests sweep when they mean to).
func realTime() opstate.Options {
	return opstate.Options{Clock: time.Now, SweepInterval: -1}
}

// clock is a fake time source for Options.Clock: it stands still until
// Advance.
type clock struct{ ns atomic.Int64 }

// newClock returns a clock at the real time, so that the database, which
// may judge expiry by its own clock, sees TTLs measured from about when
// they were set; on a whole millisecond, so that an expiry, which the
// Store rounds up to one, is exactly a TTL away.
func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().Truncate(time.Millisecond).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fakeTime is the Options of a Store on clk, without a background sweeper.
func fakeTime(clk *clock) opstate.Options {
	return opstate.Options{Clock: clk.Now, SweepInterval: -1}
}

func mustSet(t *testing.T, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%.40q, %.40q, %.40q) = %v", ns, key, value, err)
	}
}

func mustSetTTL(t *testing.T, s *opstate.Store, ns, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.SetWithTTL(ns, key, value, ttl); err != nil {
		t.Fatalf("SetWithTTL(%.40q, %.40q, %.40q, %v) = %v", ns, key, value, ttl, err)
	}
}

// wantLookup checks that Lookup and Get of ns/key return want, and
// whether the key exists.
func wantLookup(t *testing.T, s *opstate.Store, ns, key, want string, wantOK bool) {
	t.Helper()
	got, ok, err := s.Lookup(ns, key)
	if err != nil || got != want || ok != wantOK {
		t.Errorf("Lookup(%.40q, %.40q) = %.40q, %v, %v; want %.40q, %v, nil", ns, key, got, ok, err, want, wantOK)
	}
	if got, err := s.Get(ns, key); err != nil || got != want {
		t.Errorf("Get(%.40q, %.40q) = %.40q, %v; want %.40q, nil", ns, key, got, err, want)
	}
}

// wantList checks that List(ns) returns want.
func wantList(t *testing.T, s *opstate.Store, ns string, want map[string]string) {
	t.Helper()
	got, err := s.List(ns)
	if err != nil || got == nil || !maps.Equal(got, want) {
		t.Errorf("List(%.40q) = %s, %v; want %s, nil", ns, short(got), err, short(want))
	}
}

// wantNamespaces checks that Namespaces returns want, in its order.
func wantNamespaces(t *testing.T, s *opstate.Store, want []opstate.Namespace) {
	t.Helper()
	got, err := s.Namespaces()
	if err != nil || !equalNamespaces(got, want) {
		t.Errorf("Namespaces() = %s, %v; want %s, nil", short(got), err, short(want))
	}
}

func equalNamespaces(a, b []opstate.Namespace) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// short formats v for a message, cut at 300 bytes: values of a MiB are
// no help there.
func short(v any) string {
	var s string
	switch v := v.(type) {
	case []opstate.Namespace:
		var b strings.Builder
		for i, n := range v {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%.40q:%d", n.Name, n.Keys)
		}
		s = "[" + b.String() + "]"
	default:
		s = fmt.Sprintf("%q", v)
	}
	if len(s) > 300 {
		s = s[:300] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// poll calls f every few milliseconds until it returns nil or within has
// passed, and returns its last error.
func poll(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// listedWithout waits until List(ns) of s lists none of keys, which were
// set with shortTTL and must expire by the database's clock too.
func listedWithout(t *testing.T, s *opstate.Store, ns string, keys ...string) {
	t.Helper()
	err := poll(settleBound, func() error {
		m, err := s.List(ns)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if _, ok := m[k]; ok {
				return fmt.Errorf("List(%q) still lists %q", ns, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v, %v after waiting began (TTL %v)", err, settleBound, shortTTL)
	}
}
