package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testHostileText tests strings that SQL, LIKE patterns, text encodings
// and notification payloads get wrong.
func testHostileText(t *testing.T, c Config) {
	t.Run("RoundTrip", func(t *testing.T) { testHostileRoundTrip(t, c) })
	t.Run("Unstorable", func(t *testing.T) { testUnstorable(t, c) })
	t.Run("UnstorableInBatch", func(t *testing.T) { testUnstorableInBatch(t, c) })
}

// hostile are valid UTF-8 strings without NUL that every backend stores
// byte for byte: quotes, backslashes, LIKE wildcards, SQL, control bytes,
// line and paragraph separators, emoji, a byte-order mark, strings that
// only their bytes tell apart, and a long key.
var hostile = []string{
	"'", `"`, "it's", `"quoted"`, `\`, `back\slash`, `\\'`, `\x00`, "%", "_", "a%", "a_", "%_%", `\%`,
	"'; DROP TABLE operational_state; --", "$1", "?", "*", "[a-z]",
	"line\nbreak", "\r\n", "tab\tbed", "\x01\x02\x1f\x7f", "\u0085\u2028\u2029",
	" lead and trail ", "🔥", "日本語", "\ufeff", "\U0010ffff",
	// Alike under case folding, normalization or a linguistic collation,
	// and distinct strings all the same.
	"a", "A", "é", "e\u0301", "ß", "ss", "İ", "i̇",
	strings.Repeat("k", 9000),
}

// unstorable are strings a text column cannot hold: NUL bytes and invalid
// UTF-8 (a stray byte, a truncated sequence, an encoded surrogate, an
// overlong encoding).
var unstorable = []string{"\x00", "a\x00b", "\xff", "\xc3\x28", "ok\x80end", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"}

// testHostileRoundTrip: every hostile string round-trips byte for byte as
// a namespace, as a key and as a value, 4 KiB and 1 MiB values too, read
// through the writing Store, a new Store, List and Namespaces; namespaces
// that LIKE would match stay apart, in List and in DeleteNamespace; and
// CompareAndSwap and CompareAndDelete tell apart values that only their
// bytes do.
func testHostileRoundTrip(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	values := append(slices.Clone(hostile), strings.Repeat("v", 4<<10), strings.Repeat("0123456789abcdef", 1<<16))
	byKey, byValue := map[string]string{}, map[string]string{}
	for i, h := range hostile {
		mustSet(t, s, h, "k", h)
		mustSet(t, s, "by-key", h, fmt.Sprint(i))
		byKey[h] = fmt.Sprint(i)
	}
	for i, v := range values {
		k := fmt.Sprint("v", i)
		mustSet(t, s, "by-value", k, v)
		byValue[k] = v
	}

	check := func(r *opstate.Store) {
		t.Helper()
		for _, h := range hostile {
			wantLookup(t, r, h, "k", h, true)
			wantList(t, r, h, map[string]string{"k": h})
			wantLookup(t, r, "by-key", h, byKey[h], true)
		}
		for k, v := range byValue {
			wantLookup(t, r, "by-value", k, v, true)
		}
		wantList(t, r, "by-key", byKey)
		wantList(t, r, "by-value", byValue)
	}
	check(s)
	fresh := open(t, o, realTime())
	check(fresh)

	want := []opstate.Namespace{{Name: "by-key", Keys: len(hostile)}, {Name: "by-value", Keys: len(values)}}
	for _, h := range hostile {
		want = append(want, opstate.Namespace{Name: h, Keys: 1})
	}
	slices.SortFunc(want, func(a, b opstate.Namespace) int { return strings.Compare(a.Name, b.Name) })
	wantNamespaces(t, fresh, want)

	for _, ns := range []string{"%", "_", `\`} {
		if err := s.DeleteNamespace(ns); err != nil {
			t.Fatalf("DeleteNamespace(%q) = %v", ns, err)
		}
		want = slices.DeleteFunc(want, func(n opstate.Namespace) bool { return n.Name == ns })
	}
	for _, h := range hostile[:8] {
		if err := s.Delete("by-key", h); err != nil {
			t.Fatalf("Delete(by-key, %q) = %v", h, err)
		}
		delete(byKey, h)
	}
	want[slices.IndexFunc(want, func(n opstate.Namespace) bool { return n.Name == "by-key" })].Keys = len(byKey)
	for _, r := range []*opstate.Store{s, open(t, o, realTime())} {
		wantNamespaces(t, r, want)
		wantList(t, r, "by-key", byKey)
		wantLookup(t, r, "a%", "k", "a%", true)
		wantLookup(t, r, "%", "k", "", false)
	}

	// The conditional writes compare values as bytes too.
	pairs := [][2]string{{"a", "A"}, {"é", "e\u0301"}, {"ss", "ß"}, {"a", "a "}}
	for _, p := range pairs {
		mustSet(t, s, "compare", p[0], p[0])
		if ok, err := s.CompareAndSwap("compare", p[0], p[1], "swapped"); ok || err != nil {
			t.Errorf("CompareAndSwap from %q of a key holding %q = %v, %v; want false, nil", p[1], p[0], ok, err)
		}
		if ok, err := s.CompareAndDelete("compare", p[0], p[1]); ok || err != nil {
			t.Errorf("CompareAndDelete of %q of a key holding %q = %v, %v; want false, nil", p[1], p[0], ok, err)
		}
	}
	fresh = open(t, o, realTime())
	for _, p := range pairs {
		wantLookup(t, fresh, "compare", p[0], p[0], true)
	}
}

// testUnstorable: a namespace, key or value with a NUL byte or invalid
// UTF-8 is, as Config.RefusesText says, refused by every write that would
// store it, with ErrInvalidText and nothing stored, or round-trips byte
// for byte like any other string.
func testUnstorable(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	type place struct{ ns, key, value string }
	var places []place
	for i, u := range unstorable {
		places = append(places,
			place{u, "k", "v"},
			place{"by-key", u, "v"},
			place{"by-value", fmt.Sprint("k", i), u},
		)
	}
	writes := []struct {
		name string
		do   func(p place) error
	}{
		{"Set", func(p place) error { return s.Set(p.ns, p.key, p.value) }},
		{"SetWithTTL", func(p place) error { return s.SetWithTTL(p.ns, p.key, p.value, time.Hour) }},
		{"SetIfAbsent", func(p place) error { return errOf(s.SetIfAbsent(p.ns, p.key, p.value)) }},
		{"SetIfAbsentWithTTL", func(p place) error { return errOf(s.SetIfAbsentWithTTL(p.ns, p.key, p.value, time.Hour)) }},
	}
	if c.RefusesText {
		for _, w := range writes {
			for _, p := range places {
				if err := w.do(p); !errors.Is(err, opstate.ErrInvalidText) {
					t.Errorf("%s(%q, %q, %q) = %v; want ErrInvalidText", w.name, p.ns, p.key, p.value, err)
				}
			}
		}
		// CompareAndSwap to such a value swaps nothing in; from such a
		// value, it finds the key holds another.
		mustSet(t, s, "swap", "k", "old")
		for _, u := range unstorable {
			if ok, err := s.CompareAndSwap("swap", "k", "old", u); ok || !errors.Is(err, opstate.ErrInvalidText) {
				t.Errorf("CompareAndSwap(swap, k, old, %q) = %v, %v; want false, ErrInvalidText", u, ok, err)
			}
			if ok, err := s.CompareAndSwap("swap", "k", u, "new"); ok || err != nil {
				t.Errorf("CompareAndSwap(swap, k, %q, new) = %v, %v; want false, nil", u, ok, err)
			}
		}
		// What nothing can hold, nothing holds: deletes of it delete
		// nothing, without an error, and reads find nothing.
		for _, p := range places {
			if err := s.Delete(p.ns, p.key); err != nil {
				t.Errorf("Delete(%q, %q) = %v; want nil", p.ns, p.key, err)
			}
			if ok, err := s.CompareAndDelete(p.ns, p.key, p.value); ok || err != nil {
				t.Errorf("CompareAndDelete(%q, %q, %q) = %v, %v; want false, nil", p.ns, p.key, p.value, ok, err)
			}
			if err := s.DeleteNamespace(p.ns); err != nil {
				t.Errorf("DeleteNamespace(%q) = %v; want nil", p.ns, err)
			}
		}
		for _, r := range []*opstate.Store{s, open(t, o, realTime())} {
			for _, p := range places {
				wantLookup(t, r, p.ns, p.key, "", false)
				wantList(t, r, p.ns, map[string]string{})
			}
			wantLookup(t, r, "swap", "k", "old", true)
			wantNamespaces(t, r, []opstate.Namespace{{Name: "swap", Keys: 1}})
		}
		return
	}

	for _, p := range places {
		mustSet(t, s, p.ns, p.key, p.value)
	}
	mustSet(t, s, "swap", "k", "old")
	for i, u := range unstorable {
		k := fmt.Sprint("k", i)
		mustSet(t, s, "swap", k, "old")
		if ok, err := s.CompareAndSwap("swap", k, "old", u); !ok || err != nil {
			t.Errorf("CompareAndSwap(swap, %s, old, %q) = %v, %v; want true, nil", k, u, ok, err)
		}
		if ok, err := s.CompareAndDelete("swap", k, u); !ok || err != nil {
			t.Errorf("CompareAndDelete(swap, %s, %q) = %v, %v; want true, nil", k, u, ok, err)
		}
	}
	byKey, byValue := map[string]string{}, map[string]string{}
	want := []opstate.Namespace{{Name: "by-key", Keys: len(unstorable)}, {Name: "by-value", Keys: len(unstorable)}, {Name: "swap", Keys: 1}}
	for _, p := range places {
		switch p.ns {
		case "by-key":
			byKey[p.key] = p.value
		case "by-value":
			byValue[p.key] = p.value
		default:
			want = append(want, opstate.Namespace{Name: p.ns, Keys: 1})
		}
	}
	slices.SortFunc(want, func(a, b opstate.Namespace) int { return strings.Compare(a.Name, b.Name) })
	for _, r := range []*opstate.Store{s, open(t, o, realTime())} {
		for _, p := range places {
			wantLookup(t, r, p.ns, p.key, p.value, true)
		}
		wantList(t, r, "by-key", byKey)
		wantList(t, r, "by-value", byValue)
		wantNamespaces(t, r, want)
	}
}

// testUnstorableInBatch: an unstorable write racing many valid ones, so
// that group commit puts them in one batch, fails alone (with
// Config.RefusesText) or succeeds with them: every valid write succeeds
// and is stored.
func testUnstorableInBatch(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	const rounds, writers = 20, 16
	want := map[string]string{}
	for round := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			k, v := fmt.Sprintf("r%d-w%d", round, i), fmt.Sprint("v", i)
			if i == writers/2 {
				v = unstorable[round%len(unstorable)]
			}
			want[k] = v
			wg.Go(func() {
				<-start
				errs[i] = s.Set("batch", k, v)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			k := fmt.Sprintf("r%d-w%d", round, i)
			switch {
			case i == writers/2 && c.RefusesText:
				if !errors.Is(err, opstate.ErrInvalidText) {
					t.Errorf("round %d: the unstorable Set = %v; want ErrInvalidText", round, err)
				}
				delete(want, k)
			case err != nil:
				t.Errorf("round %d: Set(batch, %s) = %v; want nil", round, k, err)
			}
		}
	}
	st := s.Stats()
	t.Logf("%d writes in %d transactions", st.Writes, st.Commits)
	for _, r := range []*opstate.Store{s, open(t, o, realTime())} {
		wantList(t, r, "batch", want)
		for k, v := range want {
			wantLookup(t, r, "batch", k, v, true)
		}
	}
}
