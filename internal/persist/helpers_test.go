package persist_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

// t0 is the "now" of most tests.
var t0 = time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC).UnixMilli()

const ms = int64(1) // one millisecond, the unit of persist's times

// tempPath returns the path of a database file that does not exist yet.
func tempPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "state.db")
}

// mustOpen opens the database at path (a new one in a temporary directory
// when path is empty) and closes it when the test ends.
func mustOpen(t *testing.T, path string) *persist.DB {
	t.Helper()
	if path == "" {
		path = tempPath(t)
	}
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

// rawDB opens the file at path with plain database/sql, for looking at
// what persist wrote.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open(%q) = %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// row is one row to write with write.
type row struct {
	ns, key, value string
	exp            int64 // Unix nanoseconds; 0 for none
}

// apply runs ws as one batch at now, failing the test on error, and
// returns what each write did.
func apply(t *testing.T, db *persist.DB, now int64, ws ...persist.Write) []persist.Result {
	t.Helper()
	res, err := db.Apply(t.Context(), now, ws)
	if err != nil {
		t.Fatalf("Apply(%d writes) = %v", len(ws), err)
	}
	if len(res) != len(ws) {
		t.Fatalf("Apply(%d writes) returned %d results", len(ws), len(res))
	}
	return res
}

func putW(ns, key, value string, exp int64) persist.Write {
	return persist.Write{Kind: persist.Put, Namespace: ns, Key: key, Value: value, ExpiresAt: exp}
}

func deleteW(ns, key string) persist.Write {
	return persist.Write{Kind: persist.Delete, Namespace: ns, Key: key}
}

func deleteNamespaceW(ns string) persist.Write {
	return persist.Write{Kind: persist.DeleteNamespace, Namespace: ns}
}

// write puts rows in one batch, updated at t0.
func write(t *testing.T, db *persist.DB, rows ...row) {
	t.Helper()
	var ws []persist.Write
	for _, r := range rows {
		ws = append(ws, putW(r.ns, r.key, r.value, r.exp))
	}
	apply(t, db, t0, ws...)
}

// sweep runs DeleteExpired alone at now and returns the keys it deleted,
// sorted by key.
func sweep(t *testing.T, db *persist.DB, now int64, limit int) []persist.Key {
	t.Helper()
	keys, err := db.DeleteExpired(t.Context(), now, limit)
	if err != nil {
		t.Fatalf("DeleteExpired(%d, %d) = %v", now, limit, err)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	return keys
}

// checkGet reports a Get of ns/key that does not return want (nil: no row).
func checkGet(t *testing.T, db *persist.DB, ns, key string, want *persist.Row) {
	t.Helper()
	got, ok, err := db.Get(t.Context(), ns, key)
	switch {
	case err != nil:
		t.Errorf("Get(%q, %q) = %v", ns, key, err)
	case want == nil && ok:
		t.Errorf("Get(%q, %q) = %+v, true; want no row", ns, key, got)
	case want != nil && (!ok || got != *want):
		t.Errorf("Get(%q, %q) = %+v, %v; want %+v, true", ns, key, got, ok, *want)
	}
}

func list(t *testing.T, db *persist.DB, ns string, now int64) map[string]string {
	t.Helper()
	got, err := db.List(t.Context(), ns, now)
	if err != nil {
		t.Fatalf("List(%q) = %v", ns, err)
	}
	return got
}

func namespaces(t *testing.T, db *persist.DB, now int64) []persist.NamespaceCount {
	t.Helper()
	got, err := db.Namespaces(t.Context(), now)
	if err != nil {
		t.Fatalf("Namespaces() = %v", err)
	}
	return got
}

// sidecars returns the names of SQLite's files next to path that exist.
func sidecars(path string) []string {
	var found []string
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); err == nil {
			found = append(found, filepath.Base(path+suffix))
		}
	}
	return found
}
