package opstate_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/d8da9184/opstate"
)

// hostile are names and values that would change the meaning of a
// statement built by pasting them in, or of a LIKE or GLOB pattern.
var hostile = []string{
	"'; DROP TABLE operational_state; --",
	`" OR 1=1`,
	"' OR '1'='1",
	"x'; DELETE FROM operational_state WHERE '1'='1",
	"%", "_", "%%", "a%", "_a", "*", "?", "[a-z]",
	"\x00", "a\x00b", "\x00'; DROP TABLE operational_state; --",
	"*/", "/*", "--", "-- ", ";", "'", `"`, "`", `\`, `\'`,
	"?1", ":name", "@name", "$name",
	"NULL", "null", "SELECT * FROM sqlite_schema", "x'00'", "0x00",
}

// TestHostileNames writes hostile strings as namespaces, keys and values,
// reads them back, deletes them one by one, and checks with plain SQL
// after every step that the table and its index are still there and hold
// exactly the rows expected: each hostile string is bound as a parameter,
// never pasted into SQL or a pattern.
func TestHostileNames(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		db := sqlDB(t, path)
		rows := 0
		check := func(when string) {
			t.Helper()
			var n, schema int
			if err := db.QueryRow(`SELECT count(*) FROM operational_state`).Scan(&n); err != nil {
				t.Fatalf("%s: counting rows: %v", when, err)
			}
			if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('operational_state', 'operational_state_expiry')`).Scan(&schema); err != nil {
				t.Fatalf("%s: reading the schema: %v", when, err)
			}
			if n != rows || schema != 2 {
				t.Fatalf("%s: %d rows, %d of the table and its index; want %d rows, 2", when, n, schema, rows)
			}
		}

		plain := map[string]string{} // namespace "plain": key h holds "v" + h
		for _, h := range hostile {
			mustSet(t, s, h, h, h)
			mustSet(t, s, "plain", h, "v"+h)
			plain[h] = "v" + h
			rows += 2
			check("after Set " + h)
		}
		for _, h := range hostile {
			wantGet(t, s, h, h, h, true)
			wantGet(t, s, "plain", h, "v"+h, true)
			if m, err := s.List(h); err != nil || !maps.Equal(m, map[string]string{h: h}) {
				t.Errorf("List(%q) = %q, %v; want only %q", h, m, err, h)
			}
		}
		if m, err := s.List("plain"); err != nil || !maps.Equal(m, plain) {
			t.Errorf("List(plain) = %d keys, %v; want the %d written", len(m), err, len(plain))
		}
		if nss, err := s.Namespaces(); err != nil || len(nss) != len(hostile)+1 {
			t.Errorf("Namespaces() = %d namespaces, %v; want %d", len(nss), err, len(hostile)+1)
		}

		for i, h := range hostile {
			if i%2 == 0 {
				if err := s.DeleteNamespace(h); err != nil {
					t.Fatalf("DeleteNamespace(%q): %v", h, err)
				}
			} else if err := s.Delete(h, h); err != nil {
				t.Fatalf("Delete(%q, %q): %v", h, h, err)
			}
			rows--
			check("after deleting " + h)
			wantGet(t, s, h, h, "", false)
			wantGet(t, s, "plain", h, "v"+h, true)
		}
		for _, h := range hostile {
			if err := s.Delete("plain", h); err != nil {
				t.Fatalf("Delete(plain, %q): %v", h, err)
			}
			rows--
			check("after Delete(plain, " + h + ")")
		}
	})
}

// fuzzOpts returns the options of a Store for one fuzz input: the cache on
// or off, chosen by the input's total length so that the fuzzer explores
// both.
func fuzzOpts(total int) opstate.Options {
	opts := opstate.Options{SyncInterval: -1}
	if total%2 == 1 {
		opts.CacheBytes = -1
	}
	return opts
}

func fuzzOpen(t *testing.T, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // for a failed check; a second Close is harmless
	return s
}

func fuzzClose(t *testing.T, s *opstate.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// FuzzRoundTrip checks that any namespace, key and value round-trip byte
// for byte through Set and then Get, Lookup (twice: from SQLite and from
// the cache), List and Namespaces, and again after Close and reopen. An
// empty namespace or key must give ErrEmptyName from every method and
// leave the file empty.
func FuzzRoundTrip(f *testing.F) {
	f.Add("ns", "k", "v")
	f.Add("flags", "dark_mode", "")
	f.Add("n\x00s", "k\x00", "v\x00\x00")
	f.Add("\xff\xfe", "\xc3\x28", "\xa0\xa1")
	f.Add("a:b", "c", "a:b/c")
	f.Add("a", "b:c", "a/b:c")
	f.Add("%", "_", "%_")
	f.Add("'; DROP TABLE operational_state; --", `" OR 1=1`, "*/")
	f.Add("", "k", "v")
	f.Add("ns", "", "v")
	f.Add("ns", "big", strings.Repeat("\x00\xffopstate", 100<<10/9))
	f.Fuzz(func(t *testing.T, ns, key, value string) {
		opts := fuzzOpts(len(ns) + len(key) + len(value))
		path := filepath.Join(t.TempDir(), "fuzz.db")
		s := fuzzOpen(t, path, opts)
		if ns == "" || key == "" {
			fuzzEmptyNames(t, s, ns, key, value)
			fuzzClose(t, s)
			return
		}
		if err := s.Set(ns, key, value); err != nil {
			t.Fatalf("Set: %v", err)
		}
		check := func(when string) {
			t.Helper()
			for range 2 {
				if v, ok, err := s.Lookup(ns, key); err != nil || !ok || v != value {
					t.Fatalf("%s: Lookup = %.40q, %v, %v; want %.40q, true, nil", when, v, ok, err, value)
				}
			}
			if v, err := s.Get(ns, key); err != nil || v != value {
				t.Fatalf("%s: Get = %.40q, %v; want %.40q", when, v, err, value)
			}
			if m, err := s.List(ns); err != nil || len(m) != 1 || m[key] != value {
				t.Fatalf("%s: List = %.80q, %v; want only the key", when, m, err)
			}
			want := opstate.Namespace{Name: ns, Keys: 1}
			if nss, err := s.Namespaces(); err != nil || len(nss) != 1 || nss[0] != want {
				t.Fatalf("%s: Namespaces = %s, %v; want %s", when, namespacesString(nss), err, namespacesString([]opstate.Namespace{want}))
			}
		}
		check("after Set")
		fuzzClose(t, s)
		s = fuzzOpen(t, path, opts)
		check("after reopen")
		fuzzClose(t, s)
	})
}

// fuzzEmptyNames checks that every method given an empty namespace or key
// fails with ErrEmptyName and writes nothing.
func fuzzEmptyNames(t *testing.T, s *opstate.Store, ns, key, value string) {
	t.Helper()
	_, getErr := s.Get(ns, key)
	_, _, lookupErr := s.Lookup(ns, key)
	errs := map[string]error{
		"Set":        s.Set(ns, key, value),
		"SetWithTTL": s.SetWithTTL(ns, key, value, 1<<40),
		"Delete":     s.Delete(ns, key),
		"Get":        getErr,
		"Lookup":     lookupErr,
	}
	if ns == "" {
		_, listErr := s.List(ns)
		errs["List"] = listErr
		errs["DeleteNamespace"] = s.DeleteNamespace(ns)
	}
	for name, err := range errs {
		if !errors.Is(err, opstate.ErrEmptyName) {
			t.Errorf("%s(%q, %q) = %v; want ErrEmptyName", name, ns, key, err)
		}
	}
	if nss, err := s.Namespaces(); err != nil || len(nss) != 0 {
		t.Errorf("Namespaces after calls with empty names = %s, %v; want none", namespacesString(nss), err)
	}
}

// namespacesString formats nss for a message, names quoted.
func namespacesString(nss []opstate.Namespace) string {
	var b strings.Builder
	b.WriteString("[")
	for i, n := range nss {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.40q:%d", n.Name, n.Keys)
	}
	b.WriteString("]")
	return b.String()
}

// FuzzNamespaceIsolation writes two keys, (ns1, key1) = v1 and
// (ns2, key2) = v2, then deletes one, the other, one namespace and the
// other, rewriting between steps, and checks after each step, against a
// map of what must be there, that Lookup of both keys, List of both
// namespaces and Namespaces agree with it, and again after reopening with
// the cache off. A write to one key thus never overwrites or deletes the
// other, unless both are the same key or share the namespace that was
// deleted, however the names are spelled.
func FuzzNamespaceIsolation(f *testing.F) {
	f.Add("a:b", "c", "a", "b:c", "1", "2")
	f.Add("a", "b\x00c", "a\x00b", "c", "1", "2")
	f.Add("a\x00", "b", "a", "b", "1", "2")
	f.Add("%", "k", "x", "k", "1", "2")
	f.Add("_", "k", "a", "k", "1", "2")
	f.Add("ns", "k%", "ns", "k1", "1", "2")
	f.Add("ns", "k_", "ns", "kk", "1", "2")
	f.Add("ns", "K", "ns", "k", "1", "2")
	f.Add("a", "b", "a ", "b", "1", "2")
	f.Add("\xff", "k", "\xfe", "k", "\x00", "\xff")
	f.Add("caf\u00e9", "k", "cafe\u0301", "k", "1", "2")
	f.Add("ns", "1", "ns", "1.0", "1", "2")
	f.Add("ns", "k", "ns", "k", "1", "2")
	f.Add("'; DROP TABLE operational_state; --", "k", "ns", "k", "1", "2")
	f.Add("ns", "a", "ns", "b", strings.Repeat("v", 100<<10), strings.Repeat("w", 100<<10))
	f.Fuzz(func(t *testing.T, ns1, key1, ns2, key2, v1, v2 string) {
		if ns1 == "" || key1 == "" || ns2 == "" || key2 == "" {
			t.Skip("empty names are FuzzRoundTrip's")
		}
		type pair struct{ ns, key string }
		p1, p2 := pair{ns1, key1}, pair{ns2, key2}
		model := map[pair]string{}
		opts := fuzzOpts(len(ns1) + len(key1) + len(ns2) + len(key2) + len(v1) + len(v2))
		path := filepath.Join(t.TempDir(), "fuzz.db")
		s := fuzzOpen(t, path, opts)

		check := func(step string) {
			t.Helper()
			for _, p := range []pair{p1, p2} {
				want, wantOK := model[p]
				if v, ok, err := s.Lookup(p.ns, p.key); err != nil || ok != wantOK || v != want {
					t.Fatalf("after %s: Lookup(%q, %q) = %.40q, %v, %v; want %.40q, %v, nil", step, p.ns, p.key, v, ok, err, want, wantOK)
				}
			}
			counts := map[string]int{}
			for _, ns := range []string{ns1, ns2} {
				want := map[string]string{}
				for p, v := range model {
					if p.ns == ns {
						want[p.key] = v
					}
				}
				if len(want) > 0 {
					counts[ns] = len(want)
				}
				if m, err := s.List(ns); err != nil || !maps.Equal(m, want) {
					t.Fatalf("after %s: List(%q) = %.80q, %v; want %.80q", step, ns, m, err, want)
				}
			}
			nss, err := s.Namespaces()
			got := map[string]int{}
			for _, n := range nss {
				got[n.Name] = n.Keys
			}
			if err != nil || len(nss) != len(got) || !maps.Equal(got, counts) {
				t.Fatalf("after %s: Namespaces() = %s, %v; want counts %v", step, namespacesString(nss), err, counts)
			}
		}
		set := func(p pair, v string) {
			t.Helper()
			if err := s.Set(p.ns, p.key, v); err != nil {
				t.Fatalf("Set(%q, %q): %v", p.ns, p.key, err)
			}
			model[p] = v
		}
		del := func(p pair) {
			t.Helper()
			if err := s.Delete(p.ns, p.key); err != nil {
				t.Fatalf("Delete(%q, %q): %v", p.ns, p.key, err)
			}
			delete(model, p)
		}
		dropNS := func(ns string) {
			t.Helper()
			if err := s.DeleteNamespace(ns); err != nil {
				t.Fatalf("DeleteNamespace(%q): %v", ns, err)
			}
			maps.DeleteFunc(model, func(p pair, _ string) bool { return p.ns == ns })
		}

		set(p1, v1)
		set(p2, v2)
		check("two Sets")
		del(p2)
		check("Delete of the second")
		set(p2, v2)
		del(p1)
		check("Delete of the first")
		set(p1, v1)
		dropNS(ns2)
		check("DeleteNamespace of the second")
		set(p2, v2)
		dropNS(ns1)
		check("DeleteNamespace of the first")
		set(p1, v1)
		check("final Set")
		fuzzClose(t, s)
		opts.CacheBytes = -1
		s = fuzzOpen(t, path, opts)
		check("reopen")
		fuzzClose(t, s)
	})
}
