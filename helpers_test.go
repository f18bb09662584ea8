package opstate_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// clock is a settable time source for Options.Clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state.db")
}

// mustOpen opens a store at path with opts, as given, and closes it at the
// end of the test, failing the test if Close fails. (The default sweeper
// runs a minute after Open, later than any test here waits, unless opts
// asks for it sooner.)
func mustOpen(t testing.TB, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q) = %v", path, err)
		}
	})
	return s
}

func mustSet(t testing.TB, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q) = %v", ns, key, err)
	}
}

func wantGet(t testing.TB, s *opstate.Store, ns, key, want string, wantOK bool) {
	t.Helper()
	if err := checkLookup(s, ns, key, want, wantOK); err != nil {
		t.Error(err)
	}
}

// checkLookup is wantGet for code without a testing.TB, such as a child
// process: it returns the mismatch as an error.
func checkLookup(s *opstate.Store, ns, key, want string, wantOK bool) error {
	got, ok, err := s.Lookup(ns, key)
	if err != nil || got != want || ok != wantOK {
		return fmt.Errorf("Lookup(%q, %q) = %.40q, %v, %v; want %.40q, %v, nil", ns, key, got, ok, err, want, wantOK)
	}
	return nil
}

// sqlDB opens the store's file with plain database/sql, as an operator's
// tool would.
func sqlDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// cacheModes runs f with the cache on and off, so that every semantic holds
// for what the cache serves and for what SQLite serves.
func cacheModes(t *testing.T, f func(t *testing.T, opts opstate.Options)) {
	t.Run("cached", func(t *testing.T) { f(t, opstate.Options{}) })
	t.Run("uncached", func(t *testing.T) { f(t, opstate.Options{CacheBytes: -1}) })
}

// sidecars returns the names of the -wal, -shm and -journal files beside
// path.
func sidecars(path string) []string {
	var found []string
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); err == nil {
			found = append(found, filepath.Base(path+suffix))
		}
	}
	return found
}
