package persist_test

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

// assertNoFiles fails the test if anything is at path or at the name of one
// of SQLite's sidecars of it; it removes what it finds, which no
// connection of this process holds if the test got that far.
func assertNoFiles(t *testing.T, what, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s is on disk (%v); want nothing there", what, p, err)
			os.Remove(p)
		}
	}
}

// openMemory opens a private database with opts and closes it at the end
// of the test. It fails the test if the database is not private, or if a
// file appeared at ":memory:" in the working directory or at the
// database's name in the memdb VFS, when it opens and when it closes.
func openMemory(t *testing.T, opts persist.Options) *persist.DB {
	t.Helper()
	db, err := persist.Open(":memory:", opts)
	if err != nil {
		t.Fatalf(`Open(":memory:") = %v`, err)
	}
	if !db.Private() {
		t.Errorf(`Open(":memory:").Private() = false; want true`)
	}
	name := db.MemName()
	assertNoFiles(t, `Open(":memory:")`, ":memory:")
	assertNoFiles(t, `Open(":memory:")`, name)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		assertNoFiles(t, "after Close", ":memory:")
		assertNoFiles(t, "after Close", name)
	})
	return db
}

// TestMemoryOpen checks that ":memory:" opens a private database in which
// every method works, nothing is written to disk but a backup, and a
// failed batch rolls back (journal_mode=MEMORY, which memdb keeps).
func TestMemoryOpen(t *testing.T) {
	db := openMemory(t, persist.Options{})
	if m, err := db.JournalMode(); err != nil || m != "memory" {
		t.Errorf("PRAGMA journal_mode = %q, %v; want memory", m, err)
	}
	v0, err := db.DataVersion(t.Context())
	if err != nil {
		t.Fatalf("DataVersion() = %v", err)
	}

	write(t, db, row{"ns", "a", "1", 0}, row{"ns", "b", "2", 0}, row{"ns", "old", "x", t0 - ms}, row{"other", "c", "3", 0}, row{"gone", "d", "4", 0})
	checkGet(t, db, "ns", "a", &persist.Row{Value: "1"})
	checkGet(t, db, "ns", "old", &persist.Row{Value: "x", ExpiresAt: t0 - ms})
	if got, want := list(t, db, "ns", t0), map[string]string{"a": "1", "b": "2"}; !maps.Equal(got, want) {
		t.Errorf("List(ns) = %q; want %q", got, want)
	}
	apply(t, db, t0, deleteW("ns", "b"), deleteNamespaceW("gone"))
	checkGet(t, db, "ns", "b", nil)
	if got, want := namespaces(t, db, t0), []persist.NamespaceCount{{Namespace: "ns", Live: 1}, {Namespace: "other", Live: 1}}; !slices.Equal(got, want) {
		t.Errorf("Namespaces() = %v; want %v", got, want)
	}
	if got, want := sweep(t, db, t0, 10), []persist.Key{{Namespace: "ns", Key: "old"}}; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired() = %v; want %v", got, want)
	}
	bad := persist.Write{Kind: persist.WriteKind(200), Namespace: "ns", Key: "a"}
	if _, err := db.Apply(t.Context(), t0, []persist.Write{deleteW("ns", "a"), putW("ns", "new", "v", 0), bad}); err == nil {
		t.Errorf("Apply(a batch ending in an unknown write kind) = nil; want an error")
	}
	if got, want := list(t, db, "ns", t0), map[string]string{"a": "1"}; !maps.Equal(got, want) {
		t.Errorf("List(ns) after a failed batch = %q; want %q, as before it", got, want)
	}
	if v, err := db.DataVersion(t.Context()); err != nil || v != v0 {
		t.Errorf("DataVersion() after the DB's own writes = %d, %v; want %d", v, err, v0)
	}

	// Backup writes a file on disk, which Open reads as any database.
	dest := filepath.Join(t.TempDir(), "copy.db")
	if err := db.Backup(t.Context(), dest); err != nil {
		t.Fatalf("Backup(%s) = %v", dest, err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("backup file: %v, %v; want a non-empty file with mode 0600", fi, err)
	}
	c := mustOpen(t, dest)
	if c.Private() {
		t.Errorf("Open(%s).Private() = true; want false", dest)
	}
	if got, want := list(t, c, "other", t0), map[string]string{"c": "3"}; !maps.Equal(got, want) {
		t.Errorf("List(other) of the backup = %q; want %q", got, want)
	}
}

// TestMemoryIndependent checks that each Open of ":memory:" is a database
// of its own.
func TestMemoryIndependent(t *testing.T) {
	a := openMemory(t, persist.Options{})
	b := openMemory(t, persist.Options{})
	if a.MemName() == b.MemName() {
		t.Fatalf("two private databases share the name %q", a.MemName())
	}
	write(t, a, row{"ns", "k", "a", 0})
	checkGet(t, b, "ns", "k", nil)
	if got := list(t, b, "ns", t0); len(got) != 0 {
		t.Errorf("List(ns) of the second database = %q; want nothing", got)
	}
	write(t, b, row{"ns", "k", "b", 0})
	checkGet(t, a, "ns", "k", &persist.Row{Value: "a"})
	checkGet(t, b, "ns", "k", &persist.Row{Value: "b"})
}

// TestMemoryFreedOnClose checks that the memory of a private database is
// released at Close: SQLite keeps a memdb database while a connection has
// it open, so one opened afterwards under its name is a new, empty one.
func TestMemoryFreedOnClose(t *testing.T) {
	db, err := persist.Open(":memory:", persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, row{"ns", "k", "v", 0})
	tables := func() int {
		t.Helper()
		raw, err := sql.Open("sqlite", "file:"+db.MemName()+"?vfs=memdb")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'operational_state'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := tables(); n != 1 {
		t.Fatalf("while open, the database under its memdb name has %d operational_state tables; want 1", n)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if n := tables(); n != 0 {
		t.Errorf("after Close, the database under its memdb name has %d operational_state tables; want 0 (freed)", n)
	}
}

// checkpointWorkload writes enough pages to make CheckpointDue fire in a
// database with a write-ahead log.
func checkpointWorkload(t *testing.T, db *persist.DB) {
	t.Helper()
	v := strings.Repeat("v", 3900) // a page each
	for i := range (persist.CheckpointFrames + 200) / 12 {
		var ws []persist.Write
		for j := range 12 {
			ws = append(ws, putW("ns", fmt.Sprint(i, "/", j), v, 0))
		}
		apply(t, db, t0, ws...)
	}
}

// TestMemoryNoCheckpoint checks that a private database, which has no
// write-ahead log, never asks for a checkpoint, and that Checkpoint does
// nothing there; the same writes make a file ask for one.
func TestMemoryNoCheckpoint(t *testing.T) {
	file := mustOpen(t, "")
	checkpointWorkload(t, file)
	select {
	case <-file.CheckpointDue():
	default:
		t.Fatalf("CheckpointDue did not fire on a file after the workload (%d frames logged); the workload is too small to test anything", file.Logged())
	}

	db := openMemory(t, persist.Options{})
	checkpointWorkload(t, db)
	select {
	case <-db.CheckpointDue():
		t.Errorf("CheckpointDue fired on a private database")
	default:
	}
	if n := db.Logged(); n != 0 {
		t.Errorf("Logged() = %d on a private database; want 0", n)
	}
	if r, err := db.Checkpoint(t.Context()); err != nil || r != (persist.Checkpointed{Complete: true}) {
		t.Errorf("Checkpoint() = %+v, %v on a private database; want Complete and nothing done", r, err)
	}
	if got := len(list(t, db, "ns", t0)); got != (persist.CheckpointFrames+200)/12*12 {
		t.Errorf("List(ns) has %d keys after the workload; want %d", got, (persist.CheckpointFrames+200)/12*12)
	}
}

// TestMemoryConcurrent runs writers (Apply, DeleteExpired) beside readers
// (Get, List, Namespaces, Backup) on one private database, under -race.
// Invariants: no call fails, although the busy timeout is the shortest
// SQLite has (1 ms), so that a read and a write that met in SQLite's locks
// would fail with ErrBusy; and each writer's counter, read by any reader,
// never goes backwards.
func TestMemoryConcurrent(t *testing.T) {
	db := openMemory(t, persist.Options{BusyTimeout: time.Nanosecond})
	const writers, readers, rounds = 2, 4, 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("w", w)
			for i := 1; i <= rounds; i++ {
				ws := []persist.Write{putW("ns", key, strconv.Itoa(i), 0), putW("ttl", fmt.Sprint(key, "/", i), "x", t0-ms)}
				if _, err := db.Apply(t.Context(), t0, ws); err != nil {
					t.Errorf("Apply = %v", err)
					return
				}
				if i%50 == 0 {
					if _, err := db.DeleteExpired(t.Context(), t0, 16); err != nil {
						t.Errorf("DeleteExpired = %v", err)
						return
					}
				}
			}
		})
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			last := make([]int, writers)
			seen := func(w int, v string) bool {
				if v == "" {
					return true // not written yet
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < last[w] {
					t.Errorf("reader %d: w%d = %q after %d; want a count no smaller", r, w, v, last[w])
					return false
				}
				last[w] = n
				return true
			}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				w := i % writers
				switch i % 4 {
				case 0, 1:
					row, _, err := db.Get(t.Context(), "ns", fmt.Sprint("w", w))
					if err != nil {
						t.Errorf("Get = %v", err)
						return
					}
					if !seen(w, row.Value) {
						return
					}
				case 2:
					m, err := db.List(t.Context(), "ns", t0)
					if err != nil {
						t.Errorf("List = %v", err)
						return
					}
					if !seen(w, m[fmt.Sprint("w", w)]) {
						return
					}
				case 3:
					if _, err := db.Namespaces(t.Context(), t0); err != nil {
						t.Errorf("Namespaces = %v", err)
						return
					}
				}
				if r == 0 && i == 20 {
					if err := db.Backup(t.Context(), filepath.Join(t.TempDir(), "copy.db")); err != nil {
						t.Errorf("Backup = %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for w := range writers {
		checkGet(t, db, "ns", fmt.Sprint("w", w), &persist.Row{Value: strconv.Itoa(rounds)})
	}
}

// TestURIPaths checks that a path SQLite would read as a URI (one that
// begins with "file:") is refused with ErrInvalidPath, as is an empty one,
// and that nothing is created, neither at the path taken as a file name
// nor where the URI points; and that paths which only look special are
// file names like any other.
func TestURIPaths(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{
		"",
		"file:x.db",
		"file:x.db?mode=memory",
		"file::memory:",
		"file::memory:?cache=shared",
		"file:" + filepath.Join(dir, "abs.db"),
		"file://" + filepath.Join(dir, "abs.db"),
		"file:" + filepath.Join(dir, "abs.db") + "?vfs=memdb",
		"file:",
	} {
		db, err := persist.Open(path, persist.Options{})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, persist.ErrInvalidPath) {
			t.Errorf("Open(%q) = %v; want ErrInvalidPath", path, err)
		}
		if path != "" && (err == nil || !strings.Contains(err.Error(), `":memory:"`) || !strings.Contains(err.Error(), path)) {
			t.Errorf("Open(%q) = %v; want a message naming the path and \":memory:\"", path, err)
		}
		if path != "" {
			assertNoFiles(t, fmt.Sprintf("Open(%q)", path), path)
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("the directory the URIs name holds %d entries, %v; want none", len(ents), err)
	}

	// Only ":memory:" itself, and only "file:" in lower case (as SQLite
	// compares), are special: these are files.
	for _, name := range []string{":memory:", "FILE:x.db", "file:x.db", "x.db?mode=memory"} {
		path := filepath.Join(dir, name)
		db := mustOpen(t, path)
		if db.Private() {
			t.Errorf("Open(%q).Private() = true; want a file", path)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q) made no file there: %v", path, err)
		}
	}
	if db := mustOpen(t, dir+"/./:memory:"); db.Private() {
		t.Errorf("Open(%q).Private() = true; want the file %s", dir+"/./:memory:", filepath.Join(dir, ":memory:"))
	}
}
