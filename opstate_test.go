package opstate_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	_ "modernc.org/sqlite"
)

func TestListLiveOnlyNeverNil(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: clk.Now})
	m, err := s.List("empty")
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("List(empty) = %v (nil: %v), %v; want empty non-nil map", m, m == nil, err)
	}
	mustSet(t, s, "ns", "a", "1")
	mustSet(t, s, "ns", "b", "")
	mustSet(t, s, "other", "c", "3")
	if err := s.SetWithTTL("ns", "short", "x", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWithTTL("ns", "long", "y", time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	m, err = s.List("ns")
	want := map[string]string{"a": "1", "b": "", "long": "y"}
	if err != nil || fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("List(ns) = %v, %v; want %v", m, err, want)
	}
}

func TestDeleteNothingIsFine(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{})
	if err := s.Delete("ns", "nothing"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	if err := s.DeleteNamespace("nothing"); err != nil {
		t.Errorf("DeleteNamespace(missing) = %v", err)
	}
	mustSet(t, s, "ns", "k", "v")
	if err := s.Delete("ns", "k"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", "k", "", false)
	if err := s.Delete("ns", "k"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
}

// TestNamespaceIsolation checks that no byte of a name acts as a separator
// or wildcard.
func TestNamespaceIsolation(t *testing.T) {
	pairs := [][2]string{
		{"a:b", "c"}, {"a", "b:c"},
		{"a/b", "c"}, {"a", "b/c"},
		{"a\x00b", "c"}, {"a", "b\x00c"},
		{"%", "k"}, {"_", "k"}, {"x", "%"}, {"x", "_"}, {"x", "k"},
		{"*", "k"}, {"?", "k"}, {"[a]", "k"}, {"a", "k"},
		{"a'", "k"}, {`a"`, "k"}, {"a;--", "k"},
	}
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		for i, p := range pairs {
			mustSet(t, s, p[0], p[1], fmt.Sprint(i))
		}
		check := func(deleted map[int]bool) {
			t.Helper()
			for i, p := range pairs {
				want, ok := fmt.Sprint(i), true
				if deleted[i] {
					want, ok = "", false
				}
				wantGet(t, s, p[0], p[1], want, ok)
			}
		}
		check(nil)
		// Each List sees only its own namespace.
		for _, ns := range []string{"a", "%", "_", "x"} {
			m, err := s.List(ns)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range pairs {
				if p[0] != ns {
					if _, ok := m[p[1]]; ok && m[p[1]] == fmt.Sprint(i) {
						t.Errorf("List(%q) holds %q of namespace %q", ns, p[1], p[0])
					}
				}
			}
		}
		// Deleting "%" and "_" namespaces and the "a" namespace removes
		// exactly their keys.
		deleted := map[int]bool{}
		for _, ns := range []string{"%", "_", "a"} {
			if err := s.DeleteNamespace(ns); err != nil {
				t.Fatal(err)
			}
			for i, p := range pairs {
				if p[0] == ns {
					deleted[i] = true
				}
			}
			check(deleted)
		}
		if err := s.Delete("x", "%"); err != nil {
			t.Fatal(err)
		}
		deleted[8] = true
		check(deleted)
	})
}

func TestRoundTripBytes(t *testing.T) {
	big := strings.Repeat("\x00\xff\xfeopstate", 3<<20/10)
	cases := []struct{ name, ns, key, value string }{
		{"empty value", "ns", "k", ""},
		{"nul", "n\x00s", "k\x00", "v\x00\x00"},
		{"invalid utf8", "\xff\xfe", "\xc3\x28", "\xa0\xa1"},
		{"unicode", "名前", "ключ", "🙂"},
		{"quotes", `'";`, "'; DROP TABLE operational_state; --", `"'\`},
		{"large", "ns", "big", big},
	}
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		for _, c := range cases {
			mustSet(t, s, c.ns, c.key, c.value)
			wantGet(t, s, c.ns, c.key, c.value, true)
			m, err := s.List(c.ns)
			if err != nil || m[c.key] != c.value {
				t.Errorf("%s: List(%q)[%q] = %.20q, %v", c.name, c.ns, c.key, m[c.key], err)
			}
		}
		s.Close()
		s = mustOpen(t, path, opts)
		for _, c := range cases {
			wantGet(t, s, c.ns, c.key, c.value, true)
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "ns", "k", "old")
	calls := []struct {
		name string
		err  error
		want error
	}{
		{"Set empty ns", s.Set("", "k", "v"), opstate.ErrEmptyName},
		{"Set empty key", s.Set("ns", "", "v"), opstate.ErrEmptyName},
		{"SetWithTTL empty key", s.SetWithTTL("ns", "", "v", time.Hour), opstate.ErrEmptyName},
		{"SetWithTTL zero ttl", s.SetWithTTL("ns", "k", "new", 0), opstate.ErrInvalidTTL},
		{"SetWithTTL negative ttl", s.SetWithTTL("ns", "k", "new", -time.Second), opstate.ErrInvalidTTL},
		{"Delete empty ns", s.Delete("", "k"), opstate.ErrEmptyName},
		{"Delete empty key", s.Delete("ns", ""), opstate.ErrEmptyName},
		{"DeleteNamespace empty", s.DeleteNamespace(""), opstate.ErrEmptyName},
	}
	for _, c := range calls {
		if !errors.Is(c.err, c.want) || !strings.HasPrefix(c.err.Error(), "opstate: ") {
			t.Errorf("%s = %v; want %v", c.name, c.err, c.want)
		}
	}
	wantGet(t, s, "ns", "k", "old", true)
	if v, err := s.Get("", ""); v != "" || !errors.Is(err, opstate.ErrEmptyName) {
		t.Errorf("Get(\"\", \"\") = %q, %v; want \"\", ErrEmptyName", v, err)
	}
	if m, err := s.List(""); m == nil || !errors.Is(err, opstate.ErrEmptyName) {
		t.Errorf("List(\"\") = %v, %v; want empty map, ErrEmptyName", m, err)
	}
	s.Close()
	s = mustOpen(t, path, opstate.Options{})
	m, err := s.List("ns")
	if err != nil || len(m) != 1 || m["k"] != "old" {
		t.Errorf("after bad input and reopen, List = %v, %v; want only k=old", m, err)
	}
}

func TestClosed(t *testing.T) {
	s, err := opstate.Open(dbPath(t), opstate.Options{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	_, getErr := s.Get("ns", "k")
	_, _, lookupErr := s.Lookup("ns", "k")
	_, listErr := s.List("ns")
	_, nsErr := s.Namespaces()
	_, sweepErr := s.DeleteExpired(context.Background())
	for name, err := range map[string]error{
		"Get": getErr, "Lookup": lookupErr, "List": listErr, "Namespaces": nsErr, "DeleteExpired": sweepErr,
		"Set": s.Set("ns", "k", "v"), "SetWithTTL": s.SetWithTTL("ns", "k", "v", time.Second),
		"Delete": s.Delete("ns", "k"), "DeleteNamespace": s.DeleteNamespace("ns"),
		// Closed comes before bad input.
		"Set with an empty key": s.Set("ns", "", "v"), "SetWithTTL with ttl 0": s.SetWithTTL("ns", "k", "v", 0),
		"Delete with an empty namespace": s.Delete("", "k"), "DeleteNamespace(\"\")": s.DeleteNamespace(""),
		"List(\"\")":      func() error { _, err := s.List(""); return err }(),
		"Get(\"\", \"\")": func() error { _, err := s.Get("", ""); return err }(),
	} {
		if !errors.Is(err, opstate.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}

// TestMemoryBound writes many namespaces and large values through a small
// budget and checks that the cache stays within it while every key is
// still served, from SQLite once evicted.
func TestMemoryBound(t *testing.T) {
	const budget = 64 << 10
	s := mustOpen(t, dbPath(t), opstate.Options{CacheBytes: budget})
	val := strings.Repeat("v", 1000)
	for i := range 500 {
		mustSet(t, s, fmt.Sprint("conversation-", i), "pref", fmt.Sprint(i, val))
		if st := s.CacheStats(); st.Bytes > budget {
			t.Fatalf("after %d namespaces cache holds %d bytes; budget %d", i+1, st.Bytes, budget)
		}
	}
	mustSet(t, s, "big", "value", strings.Repeat("b", budget)) // larger than the budget
	for i := range 500 {
		wantGet(t, s, fmt.Sprint("conversation-", i), "pref", fmt.Sprint(i, val), true)
	}
	wantGet(t, s, "big", "value", strings.Repeat("b", budget), true)
	st := s.CacheStats()
	if st.Bytes > budget || st.Evictions == 0 || st.Entries == 0 {
		t.Errorf("CacheStats = %+v; want within %d bytes, some evictions, some entries", st, budget)
	}
}

// TestNegativeCaching checks that a hot lookup of an absent key reaches
// SQLite once.
func TestNegativeCaching(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{})
	for range 1000 {
		wantGet(t, s, "flags", "absent", "", false)
	}
	if n := s.Stats().Misses; n != 1 {
		t.Errorf("1000 Gets of an absent key read SQLite %d times; want 1", n)
	}
	mustSet(t, s, "flags", "absent", "now present")
	wantGet(t, s, "flags", "absent", "now present", true)
	if err := s.Delete("flags", "absent"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "flags", "absent", "", false)
	if n := s.Stats().Misses; n != 1 {
		t.Errorf("writes then Gets read SQLite %d times in all; want 1", n)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("mode 0600", func(t *testing.T) {
		path := filepath.Join(dir, "new.db")
		s := mustOpen(t, path, opstate.Options{})
		mustSet(t, s, "ns", "k", "v")
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s mode = %v; want 0600", filepath.Base(p), perm)
			}
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(dir, "missing", "x.db")
		if _, err := opstate.NewStore(path); err == nil || !strings.HasPrefix(err.Error(), "opstate: ") {
			t.Errorf("NewStore(%q) = %v; want an opstate error", path, err)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("NewStore created %s", filepath.Dir(path))
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := opstate.NewStore(dir); !errors.Is(err, opstate.ErrNotDatabase) {
			t.Errorf("NewStore(dir) = %v; want ErrNotDatabase", err)
		}
	})
	for name, content := range map[string][]byte{
		"text":      []byte("feature flags: dark_mode=on\n"),
		"short":     []byte("SQLite"),
		"bad magic": bytes.Repeat([]byte{0xAB}, 4096),
	} {
		t.Run("not sqlite: "+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := opstate.NewStore(path); !errors.Is(err, opstate.ErrNotDatabase) {
				t.Errorf("NewStore(%s) = %v; want ErrNotDatabase", name, err)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, content) {
				t.Errorf("NewStore changed the %s file", name)
			}
			if _, err := os.Stat(path + "-wal"); err == nil {
				t.Errorf("NewStore left a -wal file beside the %s file", name)
			}
		})
	}
}

// TestLegacyFiles opens files written by the SQLite-only opstate, with and
// without expires_at, and checks that nothing is lost.
func TestLegacyFiles(t *testing.T) {
	for _, withExpiry := range []bool{false, true} {
		t.Run(fmt.Sprint("expires_at=", withExpiry), func(t *testing.T) {
			path := dbPath(t)
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			stmts := []string{
				`CREATE TABLE operational_state (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (namespace, key))`,
				`INSERT INTO operational_state VALUES ('poller', 'hwm', '12345', '2026-03-07T10:00:00Z')`,
				`INSERT INTO operational_state VALUES ('flags', 'dark_mode', 'on', '2026-03-07T10:00:00Z')`,
			}
			if withExpiry {
				stmts = append(stmts,
					`ALTER TABLE operational_state ADD COLUMN expires_at TEXT`,
					`INSERT INTO operational_state VALUES ('sess', 'live', 'a', '2026-03-07T10:00:00Z', '2026-03-07T10:00:05Z')`,
					`INSERT INTO operational_state VALUES ('sess', 'dead', 'b', '2026-03-07T10:00:00Z', '2026-03-07T09:59:59Z')`,
				)
			}
			for _, q := range stmts {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()

			clk := newClock() // 2026-03-07T10:00:00Z
			s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
			wantGet(t, s, "poller", "hwm", "12345", true)
			wantGet(t, s, "flags", "dark_mode", "on", true)
			if withExpiry {
				wantGet(t, s, "sess", "live", "a", true)
				wantGet(t, s, "sess", "dead", "", false)
				clk.Advance(4999 * time.Millisecond)
				wantGet(t, s, "sess", "live", "a", true)
				clk.Advance(time.Millisecond)
				wantGet(t, s, "sess", "live", "", false)
			}
			mustSet(t, s, "flags", "new", "x")
			s.Close()
			// Opening again migrates nothing and loses nothing.
			s = mustOpen(t, path, opstate.Options{})
			wantGet(t, s, "poller", "hwm", "12345", true)
			wantGet(t, s, "flags", "new", "x", true)
		})
	}
}

func TestNamespaces(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: clk.Now})
	mustSet(t, s, "b", "1", "x")
	mustSet(t, s, "b", "2", "x")
	mustSet(t, s, "a", "1", "x")
	if err := s.SetWithTTL("c", "1", "x", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	got, err := s.Namespaces()
	want := []opstate.Namespace{{Name: "a", Keys: 1}, {Name: "b", Keys: 2}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Namespaces() = %v, %v; want %v", got, err, want)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []opstate.Options{{BusyTimeout: -1}, {Durability: 7}} {
		if _, err := opstate.Open(dbPath(t), o); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Errorf("Open(%+v) = %v; want ErrInvalidOption", o, err)
		}
	}
}

func TestDurabilityFull(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Durability: opstate.DurabilityFull})
	mustSet(t, s, "ns", "k", "v")
	s.Close()
	s = mustOpen(t, path, opstate.Options{})
	wantGet(t, s, "ns", "k", "v", true)
}

// TestWALStaysBounded writes 8,000 new keys of 1 KiB values from one
// goroutine without pause (the first of sustainedLoads, about 35,000
// frames of log), and checks that the -wal file never outgrows SQLite's
// backstop of 4096 frames (walBackstop), past which a commit would run a
// checkpoint itself: the background checkpoints must complete, and the
// log start over, while the writes keep coming.
func TestWALStaysBounded(t *testing.T) {
	r := sustainedLoads[0].run(t, dbPath(t), 1, 0)
	if r.walMax > walBackstop {
		t.Errorf("the -wal file grew to %d bytes (%d complete background checkpoints); want at most %d, 4096 frames", r.walMax, r.checkpoints, walBackstop)
	}
	t.Logf("largest -wal file %d bytes; %d complete checkpoints, which held writes off for up to %v", r.walMax, r.checkpoints, r.heldMax)
}
