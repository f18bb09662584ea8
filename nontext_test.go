package opstate_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// nonTextNames are rows written by hand whose namespace or key SQLite
// stores as another type than TEXT, and what a Store makes of them. The
// columns have TEXT affinity: SQLite stores a number given to them as its
// text, which is then a key like any other; a BLOB stays a BLOB, and is no
// key of the Store (the rule of the package's documentation); NULL is
// refused by NOT NULL.
var nonTextNames = []struct {
	name   string
	insert string // a statement of plain SQL
	// key is the name the row has for the Store, "" if none.
	ns, key string
}{
	{"blob key", `INSERT INTO operational_state VALUES ('ns', CAST('k' AS BLOB), 'v', '2026-01-01T00:00:00.000Z', NULL)`, "", ""},
	{"blob namespace", `INSERT INTO operational_state VALUES (CAST('ns' AS BLOB), 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`, "", ""},
	{"blob both", `INSERT INTO operational_state VALUES (x'6e73', x'6b', 'v', '2026-01-01T00:00:00.000Z', NULL)`, "", ""},
	{"integer key", `INSERT INTO operational_state VALUES ('ns', 5, 'v', '2026-01-01T00:00:00.000Z', NULL)`, "ns", "5"},
	{"real key", `INSERT INTO operational_state VALUES ('ns', 1.5, 'v', '2026-01-01T00:00:00.000Z', NULL)`, "ns", "1.5"},
	{"integer namespace", `INSERT INTO operational_state VALUES (7, 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`, "7", "k"},
	{"text key retyped as blob", `UPDATE operational_state SET key = CAST(key AS BLOB) WHERE namespace = 'ns' AND key = 'k'`, "", ""},
}

// TestNonTextNames checks that every read of a Store and its watchers
// agree on the rows of nonTextNames: a row whose namespace or key is not
// TEXT is absent to Get, left out by List, ListItems and Namespaces, and reported to
// no watcher, whatever text its bytes spell; a number stored as text is a
// key everywhere.
func TestNonTextNames(t *testing.T) {
	for _, tt := range nonTextNames {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			s := mustOpen(t, path, opstate.Options{})
			retyped := strings.HasPrefix(tt.insert, "UPDATE")
			if retyped {
				mustSet(t, s, "ns", "k", "v")
			}
			mustSet(t, s, "ns", "other", "v")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			watched := map[string]<-chan opstate.Event{}
			for _, ns := range []string{"ns", "7"} {
				ch, err := s.Watch(ctx, ns)
				if err != nil {
					t.Fatal(err)
				}
				watched[ns] = ch
			}
			wantGet(t, s, "ns", "k", map[bool]string{true: "v"}[retyped], retyped) // cached

			db := sqlDB(t, path)
			if _, err := db.Exec(tt.insert); err != nil {
				t.Fatal(err)
			}
			// A write after it, by the same connection: once a watcher
			// has it, it has had whatever the row brought.
			if _, err := db.Exec(`INSERT INTO operational_state VALUES ('ns', 'sentinel', 'v', '2026-01-01T00:00:00.000Z', NULL),
				('7', 'sentinel', 'v', '2026-01-01T00:00:00.000Z', NULL)`); err != nil {
				t.Fatal(err)
			}
			for ns, ch := range watched {
				var got []opstate.Event
				timeout := time.After(2 * time.Second)
			events:
				for {
					select {
					case ev := <-ch:
						if ev.Key == "sentinel" {
							break events
						}
						got = append(got, ev)
					case <-timeout:
						t.Fatalf("watcher of %q: no event of the sentinel within 2s; got %v", ns, got)
					}
				}
				var want []opstate.Event
				switch {
				case tt.ns == ns:
					want = []opstate.Event{{Namespace: ns, Key: tt.key, Op: opstate.OpSet, Value: "v"}}
				case retyped && ns == "ns":
					want = []opstate.Event{{Namespace: ns, Key: "k", Op: opstate.OpDelete}}
				}
				if !slices.Equal(got, want) {
					t.Errorf("watcher of %q got %v; want %v", ns, got, want)
				}
			}

			for _, k := range [][2]string{{"ns", "k"}, {"ns", "5"}, {"ns", "1.5"}, {"7", "k"}} {
				isKey := k == [2]string{tt.ns, tt.key}
				wantGet(t, s, k[0], k[1], map[bool]string{true: "v"}[isKey], isKey)
			}
			for _, ns := range []string{"ns", "7"} {
				want := map[string]string{"sentinel": "v"}
				if ns == "ns" {
					want["other"] = "v"
				}
				if ns == tt.ns {
					want[tt.key] = "v"
				}
				if got, err := s.List(ns); err != nil || !maps.Equal(got, want) {
					t.Errorf("List(%q) = %v, %v; want %v", ns, got, err, want)
				}
				items, err := s.ListItems(ns)
				got := map[string]string{}
				for k, it := range items {
					got[k] = it.Value
					if !it.Expires.IsZero() {
						t.Errorf("ListItems(%q)[%q].Expires = %v; want the zero time", ns, k, it.Expires)
					}
				}
				if err != nil || !maps.Equal(got, want) {
					t.Errorf("ListItems(%q) = %v, %v; want the values %v", ns, items, err, want)
				}
			}
			wantNS := []opstate.Namespace{{Name: "7", Keys: 1}, {Name: "ns", Keys: 2}}
			if tt.ns != "" {
				i := slices.IndexFunc(wantNS, func(n opstate.Namespace) bool { return n.Name == tt.ns })
				wantNS[i].Keys++
			}
			if got, err := s.Namespaces(); err != nil || !slices.Equal(got, wantNS) {
				t.Errorf("Namespaces() = %v, %v; want %v", got, err, wantNS)
			}
		})
	}
}

// TestNullName checks that SQLite refuses a NULL namespace or key: no
// such row can exist.
func TestNullName(t *testing.T) {
	path := dbPath(t)
	mustOpen(t, path, opstate.Options{})
	for _, q := range []string{
		`INSERT INTO operational_state VALUES ('ns', NULL, 'v', '2026-01-01T00:00:00.000Z', NULL)`,
		`INSERT INTO operational_state VALUES (NULL, 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`,
	} {
		if _, err := sqlDB(t, path).Exec(q); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
			t.Errorf("%s: %v; want a NOT NULL constraint failure", q, err)
		}
	}
}
