package persist_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

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
