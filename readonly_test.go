//go:build linux

package opstate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// readOnlyWrites are the writes a read-only database must refuse, on s.
func readOnlyWrites(s *opstate.Store) []struct {
	name  string
	write func() error
} {
	return []struct {
		name  string
		write func() error
	}{
		{"Set", func() error { return s.Set("ns", "k", "new") }},
		{"Set of a new key", func() error { return s.Set("ns", "absent", "new") }},
		{"SetWithTTL", func() error { return s.SetWithTTL("ns", "cold", "new", time.Hour) }},
		{"Delete", func() error { return s.Delete("ns", "cold") }},
		{"DeleteNamespace", func() error { return s.DeleteNamespace("ns") }},
		{"DeleteExpired", func() error {
			_, err := s.DeleteExpired(context.Background())
			return err
		}},
	}
}

// readOnlySeed writes, through a Store it closes, what the read-only tests
// read back: "ns"/"k" = "old", "ns"/"cold" = "c", and "ns"/"expired",
// which has expired by the time of clk.Advance(time.Minute) for
// DeleteExpired to delete.
func readOnlySeed(t *testing.T, path string, clk *clock) {
	t.Helper()
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	mustSet(t, s, "ns", "k", "old")
	mustSet(t, s, "ns", "cold", "c")
	if err := s.SetWithTTL("ns", "expired", "e", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// readOnlyReads checks what s serves of readOnlySeed's keys once
// "expired" has expired, with "ns"/"k" = k: the keys, a missing key, List
// and Namespaces.
func readOnlyReads(t *testing.T, s *opstate.Store, k, when string) {
	t.Helper()
	for _, c := range []struct {
		key, want string
		ok        bool
	}{{"k", k, true}, {"cold", "c", true}, {"absent", "", false}, {"expired", "", false}} {
		if got, ok, err := s.Lookup("ns", c.key); err != nil || got != c.want || ok != c.ok {
			t.Errorf("%s: Lookup(ns, %s) = %q, %v, %v; want %q, %v, nil", when, c.key, got, ok, err, c.want, c.ok)
		}
	}
	if m, err := s.List("ns"); err != nil || !maps.Equal(m, map[string]string{"k": k, "cold": "c"}) {
		t.Errorf("%s: List(ns) = %v, %v; want k=%s, cold=c", when, m, err, k)
	}
	if nss, err := s.Namespaces(); err != nil || len(nss) != 1 || nss[0] != (opstate.Namespace{Name: "ns", Keys: 2}) {
		t.Errorf("%s: Namespaces() = %v, %v; want [{ns 2}]", when, nss, err)
	}
}

// TestFileSystemTurnsReadOnly makes the file system under an open Store
// read-only, as the kernel does after an error on an ext4 file system
// mounted errors=remount-ro (see ext4Mount), and checks that
//   - Set, SetWithTTL, Delete, DeleteNamespace and DeleteExpired fail with
//     ErrReadOnly;
//   - after each, the Store serves what it did before: a key it had
//     cached, one it never read, one cached as absent, List and
//     Namespaces; a Store opened now serves the same;
//   - once the file system is mounted again, the file holds every
//     acknowledged write, among them one made just before the error, and
//     nothing of the failed ones; a write succeeds; PRAGMA
//     integrity_check says ok.
//
// The Store runs with DurabilityFull: when the file system turns
// read-only, the kernel never writes the pages it held, so with
// DurabilityNormal the writes acknowledged since the last checkpoint can
// be lost, as on power loss (see doc.go's Caveats): this test's are.
func TestFileSystemTurnsReadOnly(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		m := mountExt4(t)
		path := filepath.Join(m.dir, "state.db")
		clk := newClock()
		readOnlySeed(t, path, clk)
		opts.Clock, opts.Durability = clk.Now, opstate.DurabilityFull
		s := mustOpen(t, path, opts)
		warm(t, s, "ns", "k", "absent") // "cold" stays unread
		// Acknowledged just before the error, so only in the WAL.
		const k = "acknowledged"
		mustSet(t, s, "ns", "k", k)
		mustSet(t, s, "ns", "late", "acknowledged")
		if err := s.Delete("ns", "late"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)

		m.fail(t)
		readOnlyReads(t, s, k, "read-only")
		for _, w := range readOnlyWrites(s) {
			err := w.write()
			if !errors.Is(err, opstate.ErrReadOnly) {
				t.Errorf("%s on a file system turned read-only = %v; want ErrReadOnly", w.name, err)
			}
			t.Logf("%s: %v", w.name, err)
			readOnlyReads(t, s, k, "after failed "+w.name)
		}
		o := mustOpen(t, path, opstate.Options{Clock: clk.Now})
		readOnlyReads(t, o, k, "Store opened on the read-only file system")
		if err := o.Close(); err != nil {
			t.Errorf("Close of the Store opened read-only = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Logf("Close on a file system turned read-only: %v", err)
		}

		m.mountAgain(t)
		r := mustOpen(t, path, opstate.Options{Clock: clk.Now, CacheBytes: -1})
		readOnlyReads(t, r, k, "mounted again")
		mustSet(t, r, "ns", "k", "new")
		wantGet(t, r, "ns", "k", "new", true)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		crashIntegrity(t, path)
	})
}

// persistWAL writes to the database at path through a connection that
// leaves the -wal and -shm files behind when it closes, as a crash would
// (SQLITE_FCNTL_PERSIST_WAL).
func persistWAL(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		fc, ok := dc.(interface {
			FileControlPersistWAL(string, int) (int, error)
		})
		if !ok {
			return fmt.Errorf("driver connection %T has no FileControlPersistWAL", dc)
		}
		_, err := fc.FileControlPersistWAL("main", 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(context.Background(), "UPDATE operational_state SET value = value"); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyMount opens a Store on a file system mounted read-only (a
// tmpfs, remounted read-only once the file is written and every
// connection closed), with and without the -wal and -shm files SQLite
// keeps beside the database. Where SQLite can read the file (its -shm is
// there), Open must succeed, every read serve the file's contents, and
// every write fail with ErrReadOnly, leaving the reads as they were;
// where it cannot (it would have to create the -shm, or the file), Open
// must fail with ErrReadOnly. Either way no file may change or appear.
func TestReadOnlyMount(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		opens   bool
	}{
		{"no -wal or -shm", func(t *testing.T, path string) {}, false},
		{"-wal and -shm", persistWAL, true},
		{"-wal without -shm", func(t *testing.T, path string) {
			persistWAL(t, path)
			if err := os.Remove(path + "-shm"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"no file", func(t *testing.T, path string) {
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mountTmpfs(t, "size=4m")
			path := filepath.Join(dir, "state.db")
			clk := newClock()
			readOnlySeed(t, path, clk)
			clk.Advance(time.Minute)
			tt.prepare(t, path)
			before := dirFiles(t, dir)
			remount(t, dir, syscall.MS_RDONLY, "")

			s, err := opstate.Open(path, opstate.Options{Clock: clk.Now})
			switch {
			case err == nil && !tt.opens:
				s.Close()
				t.Errorf("Open succeeded; want ErrReadOnly")
			case err == nil:
				readOnlyReads(t, s, "old", "read-only")
				for _, w := range readOnlyWrites(s) {
					err := w.write()
					if !errors.Is(err, opstate.ErrReadOnly) {
						t.Errorf("%s on a read-only mount = %v; want ErrReadOnly", w.name, err)
					}
					readOnlyReads(t, s, "old", "after failed "+w.name)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
			case tt.opens:
				t.Errorf("Open = %v; want it to succeed", err)
			case !errors.Is(err, opstate.ErrReadOnly):
				t.Errorf("Open = %v; want ErrReadOnly", err)
			default:
				t.Logf("Open: %v", err)
			}
			if after := dirFiles(t, dir); !maps.Equal(after, before) {
				t.Errorf("files after Open: %v, some changed; want %v as they were", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
			}
		})
	}
}

// dirFiles returns the name and content of every file in dir. No
// connection of this process may have them open.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}
