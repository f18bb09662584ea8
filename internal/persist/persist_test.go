package persist_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
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

func TestOpenCreatesFile(t *testing.T) {
	path := tempPath(t)
	db := mustOpen(t, path)
	if db.Path() != path {
		t.Errorf("Path() = %q; want %q", db.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("Stat after Open: %v", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of the new file = %v; want -rw-------", fi.Mode())
	}
	// SQLite creates its WAL and shared-memory files with the database
	// file's permissions.
	write(t, db, row{"ns", "k", "v", 0})
	for _, name := range sidecars(path) {
		fi, err := os.Stat(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("mode of %s = %v; want no access for group or others", name, fi.Mode())
		}
	}
	var mode string
	if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("PRAGMA journal_mode = %q, %v; want %q", mode, err, "wal")
	}
	var v int
	if err := rawDB(t, path).QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != persist.SchemaVersion {
		t.Errorf("PRAGMA user_version = %d, %v; want %d", v, err, persist.SchemaVersion)
	}
}

func TestOpenRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db := mustOpen(t, "rel.db")
	want := filepath.Join(dir, "rel.db")
	if db.Path() != want {
		t.Errorf("Path() = %q; want %q", db.Path(), want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Errorf("Stat(%q) = %v; want the database file", want, err)
	}
}

// TestOpenAwkwardPath opens files whose paths hold characters that mean
// something in a URI.
func TestOpenAwkwardPath(t *testing.T) {
	for _, name := range []string{"a b", "50%", "%41", "q?mode=ro", "h#frag", "a&b=c", "é ü", "semi;colon", "'quote\""} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name+".db")
			db, err := persist.Open(path, persist.Options{})
			if err != nil {
				t.Fatalf("Open(%q) = %v", path, err)
			}
			write(t, db, row{"ns", "k", name, 0})
			if err := db.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if want := []string{name + ".db"}; !slices.Equal(names, want) {
				t.Errorf("directory holds %q after Close; want %q", names, want)
			}
			db = mustOpen(t, path)
			checkGet(t, db, "ns", "k", &persist.Row{Value: name})
		})
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if db, err := persist.Open("", persist.Options{}); err == nil {
		db.Close()
		t.Errorf(`Open("") = nil error; want an error`)
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	db, err := persist.Open(dir, persist.Options{})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, persist.ErrNotDatabase) {
		t.Errorf("Open(directory) = %v; want ErrNotDatabase", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("directory holds %d entries after Open; want none", len(entries))
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	path := filepath.Join(missing, "state.db")
	db, err := persist.Open(path, persist.Options{})
	if err == nil {
		db.Close()
		t.Errorf("Open(%q) = nil error; want an error", path)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat(missing directory) after Open = %v; want it still missing", err)
	}
}

func TestOpenNotDatabase(t *testing.T) {
	random := make([]byte, 200)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 'X' // never the SQLite magic
	garbageAfterMagic := append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 4096)...)

	tests := []struct {
		name    string
		content []byte
		errs    []error // Open must fail with one of these
	}{
		{"text", []byte("hello world"), []error{persist.ErrNotDatabase}},
		{"random bytes", random, []error{persist.ErrNotDatabase}},
		{"long text", bytes.Repeat([]byte("not a database\n"), 300), []error{persist.ErrNotDatabase}},
		{"magic only", []byte("SQLite format 3\x00"), []error{persist.ErrNotDatabase}},
		{"magic then garbage", garbageAfterMagic, []error{persist.ErrNotDatabase, persist.ErrCorrupt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := persist.Open(path, persist.Options{})
			if err == nil {
				db.Close()
			}
			if !slices.ContainsFunc(tt.errs, func(want error) bool { return errors.Is(err, want) }) {
				t.Errorf("Open(%s file) = %v; want one of %v", tt.name, err, tt.errs)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(got, tt.content) {
				t.Errorf("file after Open: %d bytes (%v); want the %d bytes it had, unchanged", len(got), rerr, len(tt.content))
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
				t.Errorf("mode after Open = %v; want -rw-r--r-- unchanged", fi.Mode())
			}
			if s := sidecars(path); len(s) != 0 {
				t.Errorf("Open left %q next to the file; want nothing", s)
			}
		})
	}
}

func TestOpenEmptyFile(t *testing.T) {
	path := tempPath(t)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path)
	write(t, db, row{"ns", "k", "v", 0})
	checkGet(t, db, "ns", "k", &persist.Row{Value: "v"})
}

func TestGetPut(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "plain", "v1", 0},
		row{"ns", "future", "v2", t0 + time.Hour.Milliseconds()},
		row{"ns", "expired", "v3", t0 - time.Hour.Milliseconds()},
		row{"ns", "submilli", "v4", t0 + 1500*ms},
		row{"ns", "empty", "", 0},
		row{"other", "plain", "v5", 0},
	)
	tests := []struct {
		ns, key string
		want    *persist.Row
	}{
		{"ns", "plain", &persist.Row{Value: "v1"}},
		{"ns", "future", &persist.Row{Value: "v2", ExpiresAt: t0 + time.Hour.Milliseconds()}},
		// Get returns rows whether they have expired or not.
		{"ns", "expired", &persist.Row{Value: "v3", ExpiresAt: t0 - time.Hour.Milliseconds()}},
		// Expiries are kept to the millisecond.
		{"ns", "submilli", &persist.Row{Value: "v4", ExpiresAt: t0 + 1500*ms}},
		{"ns", "empty", &persist.Row{Value: ""}},
		{"other", "plain", &persist.Row{Value: "v5"}},
		{"ns", "missing", nil},
		{"missing", "plain", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		checkGet(t, db, tt.ns, tt.key, tt.want)
	}

	// updated_at is the time the row was written, in the stored form.
	var updated string
	if err := rawDB(t, db.Path()).QueryRow(`SELECT updated_at FROM operational_state WHERE namespace = 'ns' AND key = 'plain'`).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if want := persist.FormatTime(t0); updated != want {
		t.Errorf("updated_at = %q; want %q", updated, want)
	}
}

func TestPutReplaces(t *testing.T) {
	tests := []struct {
		name          string
		first, second row
	}{
		{"value", row{"ns", "k", "old", 0}, row{"ns", "k", "new", 0}},
		{"expiry added", row{"ns", "k", "v", 0}, row{"ns", "k", "v", t0 + ms}},
		{"expiry dropped", row{"ns", "k", "v", t0 + ms}, row{"ns", "k", "v", 0}},
		{"expiry moved back", row{"ns", "k", "v", t0 + time.Hour.Milliseconds()}, row{"ns", "k", "w", t0 - time.Hour.Milliseconds()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, tt.first)
			write(t, db, tt.second)
			checkGet(t, db, "ns", "k", &persist.Row{Value: tt.second.value, ExpiresAt: tt.second.exp})
			var n int
			var exp sql.NullString
			if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*), max(expires_at) FROM operational_state`).Scan(&n, &exp); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("table holds %d rows; want 1", n)
			}
			if tt.second.exp == 0 && exp.Valid {
				t.Errorf("expires_at = %q; want NULL for no expiry", exp.String)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "a", "1", 0}, row{"ns", "b", "2", 0}, row{"other", "a", "3", 0})
	apply(t, db, t0, deleteW("ns", "a"), deleteW("ns", "missing"))
	apply(t, db, t0, deleteW("nowhere", "a")) // alone, and matching nothing
	checkGet(t, db, "ns", "a", nil)
	checkGet(t, db, "ns", "b", &persist.Row{Value: "2"})
	checkGet(t, db, "other", "a", &persist.Row{Value: "3"})
}

func TestDeleteNamespace(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "a", "1", 0}, row{"ns", "b", "2", t0 - ms},
		row{"ns2", "a", "3", 0}, row{"n", "s", "4", 0}, row{"NS", "a", "5", 0}, row{"ns%", "a", "6", 0})
	apply(t, db, t0, deleteNamespaceW("ns"), deleteNamespaceW("missing"))
	checkGet(t, db, "ns", "a", nil)
	checkGet(t, db, "ns", "b", nil)
	for _, r := range []row{{"ns2", "a", "3", 0}, {"n", "s", "4", 0}, {"NS", "a", "5", 0}, {"ns%", "a", "6", 0}} {
		checkGet(t, db, r.ns, r.key, &persist.Row{Value: r.value})
	}
}

// TestApplyOrder checks that the writes of a batch take effect in order,
// whether Puts are grouped into one statement or not.
func TestApplyOrder(t *testing.T) {
	tests := []struct {
		name string
		ws   []persist.Write
		want map[string]string // List("ns") afterwards
	}{
		{"empty batch", nil, map[string]string{"seed": "s"}},
		{"last Put wins", []persist.Write{putW("ns", "k", "v1", 0), putW("ns", "k", "v2", 0)}, map[string]string{"seed": "s", "k": "v2"}},
		{"Put Delete Put", []persist.Write{putW("ns", "k", "v1", 0), deleteW("ns", "k"), putW("ns", "k", "v2", 0)}, map[string]string{"seed": "s", "k": "v2"}},
		{"Put then Delete", []persist.Write{putW("ns", "k", "v1", 0), deleteW("ns", "k")}, map[string]string{"seed": "s"}},
		{"Put DeleteNamespace Put", []persist.Write{putW("ns", "a", "1", 0), deleteNamespaceW("ns"), putW("ns", "b", "2", 0)}, map[string]string{"b": "2"}},
		{"Put expired then fresh", []persist.Write{putW("ns", "k", "old", t0-ms), putW("ns", "k", "new", 0)}, map[string]string{"seed": "s", "k": "new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, row{"ns", "seed", "s", 0})
			apply(t, db, t0, tt.ws...)
			if got := list(t, db, "ns", t0-time.Hour.Milliseconds()); !maps.Equal(got, tt.want) {
				t.Errorf("List after the batch = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestApplyModel applies random batches of every kind of write, some of
// them long enough to need several multi-row statements, and compares the
// table with a reference map after each batch. Expiries are distinct, so
// that which rows a limited sweep takes is determined.
func TestApplyModel(t *testing.T) {
	type entry struct {
		value string
		exp   int64
	}
	db := mustOpen(t, "")
	model := make(map[persist.Key]entry)
	rng := rand.New(rand.NewPCG(11, 12))
	spaces := []string{"a", "b", "c"}
	var stamp int64
	usedExp := make(map[int64]bool)
	for batch := range 60 {
		now := t0 + int64(batch)*time.Second.Milliseconds()
		var ws []persist.Write
		for range rng.IntN(80) {
			k := persist.Key{Namespace: spaces[rng.IntN(len(spaces))], Key: fmt.Sprint("k", rng.IntN(40))}
			switch r := rng.IntN(100); {
			case r < 75:
				stamp++
				var exp int64
				if rng.IntN(2) == 0 {
					// Some already past; all distinct.
					exp = now + (int64(rng.IntN(20))-10)*time.Second.Milliseconds() + stamp*ms
					for usedExp[exp] {
						exp += ms
					}
					usedExp[exp] = true
				}
				v := fmt.Sprint("v", stamp)
				ws = append(ws, putW(k.Namespace, k.Key, v, exp))
				model[k] = entry{v, exp}
			case r < 88:
				ws = append(ws, deleteW(k.Namespace, k.Key))
				delete(model, k)
			case r < 90:
				ws = append(ws, deleteNamespaceW(k.Namespace))
				for mk := range model {
					if mk.Namespace == k.Namespace {
						delete(model, mk)
					}
				}
			default:
				limit := rng.IntN(5)
				var expired []persist.Key
				for mk, e := range model {
					if e.exp != 0 && e.exp/ms <= now/ms {
						expired = append(expired, mk)
					}
				}
				sort.Slice(expired, func(i, j int) bool { return model[expired[i]].exp < model[expired[j]].exp })
				expired = expired[:min(limit, len(expired))]
				for _, mk := range expired {
					delete(model, mk)
				}
				// A sweep runs on its own, after the writes before it.
				apply(t, db, now, ws...)
				ws = nil
				got, err := db.DeleteExpired(t.Context(), now, limit)
				if err != nil {
					t.Fatal(err)
				}
				less := func(a, b persist.Key) int { return strings.Compare(a.Namespace+"\x00"+a.Key, b.Namespace+"\x00"+b.Key) }
				slices.SortFunc(got, less)
				slices.SortFunc(expired, less)
				if !slices.Equal(got, expired) {
					t.Fatalf("batch %d: DeleteExpired swept %v; want %v", batch, got, expired)
				}
			}
		}
		apply(t, db, now, ws...)
		for _, ns := range spaces {
			got := list(t, db, ns, 0)
			want := make(map[string]string)
			for mk, e := range model {
				if mk.Namespace == ns {
					want[mk.Key] = e.value
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("batch %d (%d writes): List(%q) = %v; want %v", batch, len(ws), ns, got, want)
			}
		}
	}
	for mk, e := range model {
		checkGet(t, db, mk.Namespace, mk.Key, &persist.Row{Value: e.value, ExpiresAt: e.exp / ms * ms})
	}
}

// TestApplyAtomic checks that a batch that fails leaves nothing of itself
// behind, and that the DB takes batches afterwards.
func TestApplyAtomic(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "kept", "v", 0}, row{"ns", "expired", "v", t0 - ms})

	var puts []persist.Write
	for i := range 70 {
		puts = append(puts, putW("ns", fmt.Sprint("new", i), "v", 0))
	}
	bad := persist.Write{Kind: persist.WriteKind(200), Namespace: "ns", Key: "kept"}
	tests := []struct {
		name string
		ws   []persist.Write
	}{
		{"bad write alone", []persist.Write{bad}},
		{"bad write last", append(slices.Clone(puts), deleteW("ns", "kept"), deleteNamespaceW("ns"), bad)},
		{"bad write first", append([]persist.Write{bad}, puts...)},
	}
	for _, tt := range tests {
		if _, err := db.Apply(t.Context(), t0, tt.ws); err == nil {
			t.Errorf("%s: Apply = nil; want an error for an unknown write kind", tt.name)
		}
		if want := map[string]string{"kept": "v"}; !maps.Equal(list(t, db, "ns", t0), want) {
			t.Errorf("%s: List after a failed batch = %q; want %q", tt.name, list(t, db, "ns", t0), want)
		}
		checkGet(t, db, "ns", "expired", &persist.Row{Value: "v", ExpiresAt: t0 - ms})
	}
	apply(t, db, t0, puts...)
	if got := len(list(t, db, "ns", t0)); got != 71 {
		t.Errorf("List after a batch of %d Puts has %d keys; want %d", len(puts), got, 71)
	}

	// A batch on a cancelled context either applies whole or not at all.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := db.Apply(ctx, t0, []persist.Write{deleteW("ns", "kept"), putW("ns", "cancelled", "v", 0)})
	_, kept, _ := db.Get(t.Context(), "ns", "kept")
	_, put, _ := db.Get(t.Context(), "ns", "cancelled")
	if applied := !kept && put; (err == nil) != applied || (err != nil && (!kept || put)) {
		t.Errorf("Apply on a cancelled context = %v, and kept deleted: %v, cancelled put: %v; want all or nothing", err, !kept, put)
	}
}

// TestReadDuringWrite checks that reads see the last commit while another
// connection holds the write lock, without waiting for it.
func TestReadDuringWrite(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "k", "old", 0})
	conn, err := rawDB(t, db.Path()).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(t.Context(), `ROLLBACK`)
	if _, err := conn.ExecContext(t.Context(), `UPDATE operational_state SET value = 'new'`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	got, ok, err := db.Get(ctx, "ns", "k")
	if err != nil || !ok || got.Value != "old" {
		t.Errorf("Get during a write = %+v, %v, %v; want the committed %q", got, ok, err, "old")
	}
	if got := list(t, db, "ns", t0); got["k"] != "old" {
		t.Errorf("List during a write = %v; want k=old", got)
	}
}

func TestBusy(t *testing.T) {
	path := tempPath(t)
	mustOpen(t, path)
	db, err := persist.Open(path, persist.Options{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	for _, ws := range [][]persist.Write{
		{putW("ns", "k", "v", 0)},
		{putW("ns", "k", "v", 0), deleteW("ns", "other")},
	} {
		if _, err := db.Apply(t.Context(), t0, ws); !errors.Is(err, persist.ErrBusy) {
			t.Errorf("Apply(%d writes) while another connection writes = %v; want ErrBusy", len(ws), err)
		}
	}
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	apply(t, db, t0, putW("ns", "k", "v", 0))
	checkGet(t, db, "ns", "k", &persist.Row{Value: "v"})
}

func TestList(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "never", "1", 0},
		row{"ns", "future", "2", t0 + time.Hour.Milliseconds()},
		row{"ns", "next ms", "3", t0 + ms},
		row{"ns", "now", "4", t0},
		row{"ns", "past", "5", t0 - ms},
		row{"ns", "long ago", "6", 1},
		row{"other", "never", "7", 0},
	)
	tests := []struct {
		ns   string
		now  int64
		want map[string]string
	}{
		{"ns", t0, map[string]string{"never": "1", "future": "2", "next ms": "3"}},
		{"ns", t0 - 1, map[string]string{"never": "1", "future": "2", "next ms": "3", "now": "4"}},
		{"ns", t0 + ms - 1, map[string]string{"never": "1", "future": "2", "next ms": "3"}},
		{"ns", t0 + time.Hour.Milliseconds(), map[string]string{"never": "1"}},
		{"ns", 2, map[string]string{"never": "1", "future": "2", "next ms": "3", "now": "4", "past": "5"}},
		{"other", t0, map[string]string{"never": "7"}},
		{"missing", t0, map[string]string{}},
	}
	for _, tt := range tests {
		if got := list(t, db, tt.ns, tt.now); !maps.Equal(got, tt.want) {
			t.Errorf("List(%q, now=t0%+dns) = %v; want %v", tt.ns, tt.now-t0, got, tt.want)
		}
	}
}

func TestNamespaces(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"b", "1", "", 0}, row{"b", "2", "", t0 + ms}, row{"b", "3", "", t0},
		row{"a", "1", "", t0 + time.Hour.Milliseconds()},
		row{"expired", "1", "", t0 - ms}, row{"expired", "2", "", t0},
		row{"", "1", "", 0},
		row{"c", "1", "", 0}, row{"c", "2", "", 0}, row{"c", "3", "", 0},
	)
	tests := []struct {
		now  int64
		want []persist.NamespaceCount
	}{
		{t0, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 2}, {Namespace: "c", Live: 3}}},
		{t0 - 1, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 3}, {Namespace: "c", Live: 3}, {Namespace: "expired", Live: 1}}},
		{t0 + ms, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 1}, {Namespace: "c", Live: 3}}},
		{t0 + 2*time.Hour.Milliseconds(), []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "b", Live: 1}, {Namespace: "c", Live: 3}}},
	}
	for _, tt := range tests {
		if got := namespaces(t, db, tt.now); !slices.Equal(got, tt.want) {
			t.Errorf("Namespaces(now=t0%+dns) = %v; want %v", tt.now-t0, got, tt.want)
		}
	}
	// Each namespace's count is the size of its List.
	for _, nc := range namespaces(t, db, t0) {
		if n := len(list(t, db, nc.Namespace, t0)); n != nc.Live {
			t.Errorf("Namespaces counts %d live keys in %q; List returns %d", nc.Live, nc.Namespace, n)
		}
	}
}

func TestDeleteExpired(t *testing.T) {
	db := mustOpen(t, "")
	// Written out of expiry order, across namespaces.
	write(t, db,
		row{"b", "t-2", "", t0 - 2*ms},
		row{"a", "never", "", 0},
		row{"a", "t-1", "", t0 - ms},
		row{"c", "t0", "", t0},
		row{"a", "t-4", "", t0 - 4*ms},
		row{"b", "t+1", "", t0 + ms},
		row{"c", "t-3", "", t0 - 3*ms},
	)
	steps := []struct {
		limit int
		want  []persist.Key // sorted by key
	}{
		{0, nil},
		{2, []persist.Key{{Namespace: "c", Key: "t-3"}, {Namespace: "a", Key: "t-4"}}},
		{1, []persist.Key{{Namespace: "b", Key: "t-2"}}},
		{10, []persist.Key{{Namespace: "a", Key: "t-1"}, {Namespace: "c", Key: "t0"}}},
		{10, nil},
	}
	for i, s := range steps {
		got := sweep(t, db, t0, s.limit)
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: DeleteExpired(t0, %d) = %v; want %v", i, s.limit, got, s.want)
		}
		for _, k := range got {
			checkGet(t, db, k.Namespace, k.Key, nil)
		}
	}
	checkGet(t, db, "a", "never", &persist.Row{})
	checkGet(t, db, "b", "t+1", &persist.Row{ExpiresAt: t0 + ms})

	// A sweep that fails deletes nothing and reports nothing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if keys, err := db.DeleteExpired(ctx, t0+time.Hour.Milliseconds(), 10); err == nil || keys != nil {
		t.Errorf("DeleteExpired on a cancelled context = %v, %v; want no keys and an error", keys, err)
	}
	checkGet(t, db, "b", "t+1", &persist.Row{ExpiresAt: t0 + ms})
	if got, want := sweep(t, db, t0+time.Hour.Milliseconds(), 10), []persist.Key{{Namespace: "b", Key: "t+1"}}; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired(t0+1h, 10) = %v; want %v", got, want)
	}
}

// TestSweepOrderLarge checks that a limited sweep over many rows takes the
// earliest expiries, whatever order they were written in.
func TestSweepOrderLarge(t *testing.T) {
	db := mustOpen(t, "")
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []row
	var expiries []int64
	for i, p := range rng.Perm(500) {
		exp := t0 - int64(p+1)*ms
		rows = append(rows, row{fmt.Sprint("ns", i%7), fmt.Sprint("k", i), "v", exp})
		expiries = append(expiries, exp)
		rows = append(rows, row{"live", fmt.Sprint("k", i), "v", t0 + int64(p+1)*ms})
	}
	write(t, db, rows...)
	slices.Sort(expiries)
	var got []int64
	for _, k := range sweep(t, db, t0, 50) {
		for _, r := range rows {
			if r.ns == k.Namespace && r.key == k.Key {
				got = append(got, r.exp)
			}
		}
	}
	slices.Sort(got)
	if want := expiries[:50]; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired(t0, 50) took expiries %v…; want the 50 earliest %v…", got[:min(3, len(got))], want[:3])
	}
}

// awkward are names and values that must reach SQLite as parameters,
// never as SQL text.
var awkward = []string{
	"'; DROP TABLE operational_state; --",
	"\"; DROP TABLE operational_state; --",
	"'", "''", "\"", "`", ";", "--", "/*", "*/", "\\", "%", "_", "?", "?1", ":name", "@p", "$1",
	"a\x00b", "\x00", "line\nbreak", "tab\t", "ünï©ødé ✓", "", " ", "NULL", "null",
	"') ON CONFLICT DO NOTHING; --",
	"x' OR '1'='1",
}

func TestParameters(t *testing.T) {
	db := mustOpen(t, "")
	var rows []row
	for i, s := range awkward {
		rows = append(rows, row{s, s, "value " + s, 0}, row{"ns", s, s, t0 + int64(i+1)*ms})
	}
	write(t, db, rows...)

	for i, s := range awkward {
		checkGet(t, db, s, s, &persist.Row{Value: "value " + s})
		checkGet(t, db, "ns", s, &persist.Row{Value: s, ExpiresAt: t0 + int64(i+1)*ms})
		got := list(t, db, s, t0)
		want := map[string]string{s: "value " + s}
		if !maps.Equal(got, want) {
			t.Errorf("List(%q) = %q; want %q", s, got, want)
		}
	}
	nsList := list(t, db, "ns", t0)
	for _, s := range awkward {
		if nsList[s] != s {
			t.Errorf("List(%q)[%q] = %q; want %q", "ns", s, nsList[s], s)
		}
	}
	counts := namespaces(t, db, t0)
	if len(counts) != len(awkward)+1 {
		t.Errorf("Namespaces() returns %d namespaces; want %d", len(counts), len(awkward)+1)
	}

	apply(t, db, t0, deleteW("ns", awkward[0]), deleteNamespaceW(awkward[0]))
	checkGet(t, db, awkward[0], awkward[0], nil)
	checkGet(t, db, "ns", awkward[0], nil)
	for _, s := range awkward[1:] {
		checkGet(t, db, s, s, &persist.Row{Value: "value " + s})
	}

	var tables int
	if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'operational_state'`).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("operational_state tables = %d, %v; want 1", tables, err)
	}
	var n int
	if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM operational_state`).Scan(&n); err != nil || n != 2*len(awkward)-2 {
		t.Errorf("rows = %d, %v; want %d", n, err, 2*len(awkward)-2)
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{t0, "2026-03-07T10:00:00.000Z"},
		{t0 + 1, "2026-03-07T10:00:00.001Z"},
		{0, "1970-01-01T00:00:00.000Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC).UnixMilli(), "1999-12-31T23:59:59.999Z"},
		{time.Date(2026, 3, 7, 12, 0, 0, 0, time.FixedZone("+02", 2*3600)).UnixMilli(), "2026-03-07T10:00:00.000Z"},
		{persist.EarliestMillis, "0000-01-01T00:00:00.000Z"},
		{persist.LatestMillis, "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		if got := persist.FormatTime(tt.ms); got != tt.want {
			t.Errorf("FormatTime(%d) = %q; want %q", tt.ms, got, tt.want)
		}
	}

	// Round trip, fixed width, and text order is time order, over the
	// whole range.
	rng := rand.New(rand.NewPCG(8, 9))
	lo, hi := int64(persist.EarliestMillis), int64(persist.LatestMillis)
	var sample []int64
	for range 2000 {
		n := lo + rng.Int64N(hi-lo-2)
		sample = append(sample, n, n+rng.Int64N(3)) // near neighbours
	}
	sample = append(sample, lo, hi)
	for _, n := range sample {
		s := persist.FormatTime(n)
		if len(s) != 24 {
			t.Errorf("len(FormatTime(%d)) = %d (%q); want 24", n, len(s), s)
		}
		back, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || back.UnixMilli() != n {
			t.Errorf("time.Parse(FormatTime(%d) = %q) = %d, %v; want %d", n, s, back.UnixMilli(), err, n)
		}
	}
	byText := slices.Clone(sample)
	sort.SliceStable(byText, func(i, j int) bool { return persist.FormatTime(byText[i]) < persist.FormatTime(byText[j]) })
	byTime := slices.Clone(sample)
	slices.Sort(byTime)
	for i := range byText {
		if byText[i] != byTime[i] {
			t.Fatalf("text order and time order differ at %d: %q vs %q", i, persist.FormatTime(byText[i]), persist.FormatTime(byTime[i]))
		}
	}
}

// TestStoredTimeForms writes expires_at by hand in the forms SQLite reads
// (as an operator with the sqlite3 shell, or an earlier opstate, would)
// and checks that Get, List, Namespaces and the sweep all give each the
// same meaning.
func TestStoredTimeForms(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	tests := []struct {
		stored string
		want   int64 // Row.ExpiresAt; 0 for never
	}{
		{"2026-03-07T10:00:00.000Z", t0},
		{"2026-03-07T10:00:00Z", t0},
		{"2026-03-07 10:00:00", t0},
		{"2026-03-07 10:00:00.250", t0 + 250*ms},
		{"2026-03-07T10:00:00.5Z", t0 + 500*ms},
		{"2026-03-07T12:00:00+02:00", t0},
		{"2026-03-07T05:30:00-04:30", t0},
		{"2026-03-07T10:00", t0},
		{"2099-01-01T00:00:00Z", at("2099-01-01T00:00:00Z")},
		{"2020-01-01T00:00:00Z", at("2020-01-01T00:00:00Z")},
		{"garbage", 0},
		{"", 0},
		{"2026-13-45T99:99:99Z", 0},
		// The ends of the range, and the epoch, which 0 ("never") cannot
		// hold: it reads a millisecond early.
		{"0000-01-01T00:00:00.000Z", persist.EarliestMillis},
		{"9999-12-31T23:59:59.999Z", persist.LatestMillis},
		{"1970-01-01T00:00:00.000Z", -1},
		{"10000-01-01T00:00:00.000Z", 0},
	}
	for _, tt := range tests {
		t.Run(tt.stored, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, row{"ns", "k", "v", 0})
			if _, err := rawDB(t, db.Path()).Exec(`UPDATE operational_state SET expires_at = ?`, tt.stored); err != nil {
				t.Fatal(err)
			}
			checkGet(t, db, "ns", "k", &persist.Row{Value: "v", ExpiresAt: tt.want})

			// Just before the expiry the row is live everywhere; at it,
			// nowhere. A row that never expires is live at any time.
			for _, now := range []int64{tt.want - 1, tt.want} {
				if tt.want == 0 {
					now = at("2200-01-01T00:00:00Z")
				}
				live := tt.want == 0 || now < tt.want
				if _, got := list(t, db, "ns", now)["k"]; got != live {
					t.Errorf("List(now=%s) has the row: %v; want %v", time.UnixMilli(now).UTC(), got, live)
				}
				if tt.want == -1 && now == -1 {
					// Namespaces and the sweep judge in SQL, where the epoch
					// is no special case: they see the row a millisecond
					// longer than Get and List, never shorter.
					live = true
				}
				counted := len(namespaces(t, db, now)) == 1
				if counted != live {
					t.Errorf("Namespaces(now=%s) counts the row: %v; want %v", time.UnixMilli(now).UTC(), counted, live)
				}
				// (The first now never sweeps a correct row, so the second
				// still finds it.)
				if keys := sweep(t, db, now, 10); (len(keys) == 1) == live {
					t.Errorf("DeleteExpired(now=%s) = %v; want the row swept: %v", time.UnixMilli(now).UTC(), keys, !live)
				}
			}
		})
	}
}

// sweepQuery is the sweep's statement, as persist prepares it. Keep the two
// in step.
// sweepQuery is the statement the sweep runs.
const sweepQuery = persist.SweepSQL

func TestSweepUsesIndex(t *testing.T) {
	db := mustOpen(t, "")
	var rows []row
	for i := range 200 {
		exp := int64(0)
		if i%2 == 0 {
			exp = t0 + int64(i)*ms
		}
		rows = append(rows, row{"ns", fmt.Sprint("k", i), "v", exp})
	}
	write(t, db, rows...)
	// No ANALYZE: opstate never runs it, so this is the plan it gets.
	raw := rawDB(t, db.Path())
	plan, err := raw.Query(`EXPLAIN QUERY PLAN `+sweepQuery, persist.FormatTime(t0), 10)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN of the sweep = %v", err)
	}
	defer plan.Close()
	var details []string
	for plan.Next() {
		var id, parent, notUsed int
		var detail string
		if err := plan.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		details = append(details, detail)
	}
	if err := plan.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(details, "\n")
	t.Logf("plan:\n%s", all)
	if !strings.Contains(all, "USING INDEX operational_state_expiry") && !strings.Contains(all, "USING COVERING INDEX operational_state_expiry") {
		t.Errorf("the sweep's plan does not use operational_state_expiry:\n%s", all)
	}
	if strings.Contains(all, "TEMP B-TREE") {
		t.Errorf("the sweep's plan sorts in a temporary b-tree:\n%s", all)
	}
}

// TestSyncMode checks that each durability reaches the write connection:
// synchronous=NORMAL (1) by default, FULL (2) with SyncFull.
func TestSyncMode(t *testing.T) {
	for _, c := range []struct {
		sync persist.Sync
		want int
	}{{persist.SyncNormal, 1}, {persist.SyncFull, 2}} {
		db, err := persist.Open(tempPath(t), persist.Options{Sync: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Synchronous()
		if err != nil || got != c.want {
			t.Errorf("Open(Sync: %d): PRAGMA synchronous = %d, %v; want %d", c.sync, got, err, c.want)
		}
		db.Close()
	}
}
