package persist_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// TestNonTextRows checks persist's side of the rule that a row whose
// namespace or key is not TEXT (a BLOB written by hand) is no key: Get,
// List and Namespaces leave it out, Changes does not report another
// connection's write of it, and the sweep and DeleteNamespace, which
// delete it with the others, do not return it as a key they deleted.
func TestNonTextRows(t *testing.T) {
	for _, tt := range []struct {
		name string
		ns   string // SQL
		key  string // SQL
	}{
		{"blob key", `'ns'`, `CAST('k' AS BLOB)`},
		{"blob namespace", `CAST('ns' AS BLOB)`, `'k'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			apply(t, db, t0, putW("ns", "text", "v", 0))
			changes(t, db)
			insert := func(expires string) {
				t.Helper()
				execRaw(t, db.Path(), `INSERT INTO operational_state VALUES (`+tt.ns+`, `+tt.key+`, 'v', '2026-01-01T00:00:00.000Z', `+expires+`)`)
			}
			insert("NULL")
			if ch := changes(t, db); ch.Reset || len(ch.Keys) > 0 || len(ch.Namespaces) > 0 {
				t.Errorf("Changes() after another connection's insert = %+v; want no key", ch)
			}
			checkGet(t, db, "ns", "k", nil)
			if got, want := list(t, db, "ns", t0), map[string]string{"text": "v"}; !maps.Equal(got, want) {
				t.Errorf("List(ns) = %v; want %v", got, want)
			}
			if got, want := namespaces(t, db, t0), []persist.NamespaceCount{{Namespace: "ns", Live: 1}}; !slices.Equal(got, want) {
				t.Errorf("Namespaces() = %v; want %v", got, want)
			}

			execRaw(t, db.Path(), `DELETE FROM operational_state WHERE typeof(namespace) = 'blob' OR typeof(key) = 'blob'`)
			insert(`'2000-01-01T00:00:00.000Z'`) // expired
			changes(t, db)
			if got := sweep(t, db, t0, 10); len(got) != 0 {
				t.Errorf("DeleteExpired() = %v; want no key", got)
			}
			if tt.ns == `'ns'` {
				insert("NULL")
				changes(t, db)
				apply(t, db, t0, deleteNamespaceW("ns"))
			}
			// The DB's own record of what it deleted matches the log: a
			// write of the text key by another connection is reported.
			execRaw(t, db.Path(), `INSERT INTO operational_state VALUES ('ns', 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`)
			if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("ns", "k")) {
				t.Errorf("Changes() after another connection's insert of ns/k = %+v; want ns/k", ch)
			}
		})
	}
}
