package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// assertNoMemoryFile fails the test if a file named ":memory:", or one of
// SQLite's sidecars of it, is in the working directory, and removes it.
func assertNoMemoryFile(t testing.TB, when string) {
	t.Helper()
	for _, p := range []string{":memory:", ":memory:-wal", ":memory:-shm", ":memory:-journal"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s is in the working directory (%v); want nothing on disk", when, p, err)
			os.Remove(p)
		}
	}
}

// openMemory opens an in-memory store with opts and closes it at the end
// of the test, failing the test if a file appeared for it in the working
// directory.
func openMemory(t testing.TB, opts opstate.Options) *opstate.Store {
	t.Helper()
	s := mustOpen(t, ":memory:", opts)
	assertNoMemoryFile(t, `Open(":memory:")`)
	t.Cleanup(func() { assertNoMemoryFile(t, `Close of the ":memory:" store`) })
	return s
}

// TestMemoryStore checks that every method of an in-memory store works, on
// what the cache serves and on what SQLite serves, and that a Backup of it
// is a file that Open reads.
func TestMemoryStore(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		clk := newClock()
		opts.Clock = clk.Now
		s := openMemory(t, opts)
		mustSet(t, s, "flags", "dark_mode", "on")
		mustSet(t, s, "flags", "empty", "")
		mustSet(t, s, "gone", "k", "v")
		if err := s.SetWithTTL("sessions", "u1", "x", time.Second); err != nil {
			t.Fatalf("SetWithTTL = %v", err)
		}
		wantGet(t, s, "flags", "dark_mode", "on", true)
		wantGet(t, s, "flags", "empty", "", true)
		wantGet(t, s, "flags", "missing", "", false)
		wantGet(t, s, "sessions", "u1", "x", true)
		if got, err := s.Namespaces(); err != nil || !slices.Equal(got, []opstate.Namespace{{"flags", 2}, {"gone", 1}, {"sessions", 1}}) {
			t.Errorf("Namespaces() = %v, %v; want flags 2, gone 1, sessions 1", got, err)
		}

		clk.Advance(time.Second)
		wantGet(t, s, "sessions", "u1", "", false)
		if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
			t.Errorf("DeleteExpired() = %d, %v; want 1, nil", n, err)
		}
		if err := s.Delete("flags", "empty"); err != nil {
			t.Errorf("Delete = %v", err)
		}
		if err := s.DeleteNamespace("gone"); err != nil {
			t.Errorf("DeleteNamespace = %v", err)
		}
		wantGet(t, s, "gone", "k", "", false)
		if m, err := s.List("flags"); err != nil || !maps.Equal(m, map[string]string{"dark_mode": "on"}) {
			t.Errorf("List(flags) = %q, %v; want dark_mode=on", m, err)
		}

		dest := filepath.Join(t.TempDir(), "copy.db")
		if err := s.Backup(context.Background(), dest); err != nil {
			t.Fatalf("Backup(%s) = %v", dest, err)
		}
		c := mustOpen(t, dest, opstate.Options{CacheBytes: -1})
		if m, err := c.List("flags"); err != nil || !maps.Equal(m, map[string]string{"dark_mode": "on"}) {
			t.Errorf("List(flags) of the backup = %q, %v; want dark_mode=on", m, err)
		}

		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if _, err := s.Get("flags", "dark_mode"); !errors.Is(err, opstate.ErrClosed) {
			t.Errorf("Get after Close = %v; want ErrClosed", err)
		}
	})
}

// TestMemoryStoresIndependent checks that each in-memory store is its own
// database: what one writes, another never reads, from SQLite or from its
// cache.
func TestMemoryStoresIndependent(t *testing.T) {
	a := openMemory(t, opstate.Options{CacheBytes: -1})
	b := openMemory(t, opstate.Options{CacheBytes: -1})
	c, err := opstate.NewStore(":memory:")
	if err != nil {
		t.Fatalf(`NewStore(":memory:") = %v`, err)
	}
	defer c.Close()
	mustSet(t, a, "ns", "k", "a")
	for name, s := range map[string]*opstate.Store{"Open": b, "NewStore": c} {
		if v, ok, err := s.Lookup("ns", "k"); ok || err != nil {
			t.Errorf("%s: Lookup(ns, k) = %q, %v, %v in a second in-memory store; want missing", name, v, ok, err)
		}
		if m, err := s.List("ns"); err != nil || len(m) != 0 {
			t.Errorf("%s: List(ns) = %q, %v in a second in-memory store; want nothing", name, m, err)
		}
		if ns, err := s.Namespaces(); err != nil || len(ns) != 0 {
			t.Errorf("%s: Namespaces() = %v, %v in a second in-memory store; want none", name, ns, err)
		}
	}
	mustSet(t, b, "ns", "k", "b")
	wantGet(t, a, "ns", "k", "a", true)
	wantGet(t, b, "ns", "k", "b", true)
}

// TestMemoryStoreConcurrent runs writers (Set, SetWithTTL, Delete,
// DeleteExpired) beside readers (Get, List, Namespaces, Backup) on one
// uncached in-memory store, under -race. Invariants: no call fails,
// although BusyTimeout is the shortest there is, so that reads and writes
// meeting in SQLite's locks would fail with ErrBusy; and each writer's
// counter, as any reader reads it, never goes backwards.
func TestMemoryStoreConcurrent(t *testing.T) {
	clk := newClock()
	s := openMemory(t, opstate.Options{CacheBytes: -1, BusyTimeout: time.Nanosecond, SweepInterval: time.Millisecond, Clock: clk.Now})
	const writers, readers, rounds = 2, 3, 300
	var wg, rg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("w", w)
			for i := 1; i <= rounds; i++ {
				if err := s.Set("count", key, strconv.Itoa(i)); err != nil {
					t.Errorf("Set = %v", err)
					return
				}
				if err := s.SetWithTTL("ttl", fmt.Sprint(key, "/", i), "x", time.Millisecond); err != nil {
					t.Errorf("SetWithTTL = %v", err)
					return
				}
				if err := s.Delete("ttl", fmt.Sprint(key, "/", i-1)); err != nil {
					t.Errorf("Delete = %v", err)
					return
				}
				if i%50 == 0 {
					clk.Advance(time.Millisecond)
					if _, err := s.DeleteExpired(context.Background()); err != nil {
						t.Errorf("DeleteExpired = %v", err)
						return
					}
				}
			}
		})
	}
	done := make(chan struct{})
	for r := range readers {
		rg.Go(func() {
			last := make([]int, writers)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				w := i % writers
				var v string
				var err error
				switch i % 3 {
				case 0:
					v, err = s.Get("count", fmt.Sprint("w", w))
				case 1:
					var m map[string]string
					m, err = s.List("count")
					v = m[fmt.Sprint("w", w)]
				case 2:
					_, err = s.Namespaces()
					v = strconv.Itoa(last[w])
				}
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				if r == 0 && i == 30 {
					if err := s.Backup(context.Background(), filepath.Join(t.TempDir(), "copy.db")); err != nil {
						t.Errorf("Backup = %v", err)
						return
					}
				}
				if v == "" {
					continue // not written yet
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < last[w] {
					t.Errorf("reader %d: w%d = %q after %d; want a count no smaller", r, w, v, last[w])
					return
				}
				last[w] = n
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for w := range writers {
		wantGet(t, s, "count", fmt.Sprint("w", w), strconv.Itoa(rounds), true)
	}
}

// TestMemoryStoreNoPolling checks that an in-memory store runs no check
// for other writers, which could never find one: with the sweeper off, a
// file store's listener polls the change log (persist's poller), and an
// in-memory store's does not.
func TestMemoryStoreNoPolling(t *testing.T) {
	opts := opstate.Options{SweepInterval: -1, SyncInterval: time.Millisecond}
	// pollers counts the goroutines that poll the change log: in the
	// poller's Next or Poll (persist), or asleep between polls while
	// nobody reads (Store.sleep). A file store's shows in one of them
	// nearly always (it may be applying a report just then: the count is
	// taken until it shows, for up to 10s); an in-memory store's
	// listener reports nothing and never polls, so its goroutine shows in
	// neither, ever.
	pollers := func(want int) int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			n := 0
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "persist.(*poller)") || strings.Contains(g, "opstate.(*Store).sleep") {
					n++
				}
			}
			if n == want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(time.Millisecond)
		}
	}
	file := mustOpen(t, dbPath(t), opts)
	if n := pollers(1); n != 1 {
		t.Fatalf("a file store runs %d polling goroutines; want 1, its check for other writers (is the test out of date?)", n)
	}
	file.Close()
	openMemory(t, opts)
	for range 100 { // a poller would show within 100 looks a millisecond apart
		if n := pollers(0); n != 0 {
			t.Fatalf("an in-memory store runs %d polling goroutines; want none", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// backupEnv names the file the memory-paths child backs its store up to.
const backupEnv = "OPSTATE_TEST_BACKUP"

func init() {
	childRoles["memory-paths"] = memoryPathsChild
	childRoles["plain-paths"] = plainPathsChild
}

// uriPaths are paths that SQLite would read as URIs.
var uriPaths = []string{"file:x.db", "file:x.db?mode=memory", "file::memory:", "file::memory:?cache=shared", "file:", "file:///x.db"}

// memoryPathsChild uses two in-memory stores, every method of them, and
// tries to open every path of uriPaths; TestMemoryPaths runs it in an
// empty directory, which must stay empty.
func memoryPathsChild() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	a, err := opstate.NewStore(":memory:")
	if err != nil {
		return fail("NewStore: %v", err)
	}
	b, err := opstate.Open(":memory:", opstate.Options{CacheBytes: -1, SweepInterval: time.Millisecond})
	if err != nil {
		return fail("Open: %v", err)
	}
	for _, s := range []*opstate.Store{a, b} {
		if err := s.Set("ns", "k", "v"); err != nil {
			return fail("Set: %v", err)
		}
		if err := s.SetWithTTL("ns", "ttl", "v", time.Millisecond); err != nil {
			return fail("SetWithTTL: %v", err)
		}
		if v, err := s.Get("ns", "k"); err != nil || v != "v" {
			return fail("Get = %q, %v", v, err)
		}
		if _, err := s.List("ns"); err != nil {
			return fail("List: %v", err)
		}
		if _, err := s.Namespaces(); err != nil {
			return fail("Namespaces: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
		if _, err := s.DeleteExpired(context.Background()); err != nil {
			return fail("DeleteExpired: %v", err)
		}
		if err := s.Delete("ns", "k"); err != nil {
			return fail("Delete: %v", err)
		}
		if err := s.DeleteNamespace("other"); err != nil {
			return fail("DeleteNamespace: %v", err)
		}
	}
	if err := a.Set("backup", "k", "v"); err != nil {
		return fail("Set: %v", err)
	}
	if err := a.Backup(context.Background(), os.Getenv(backupEnv)); err != nil {
		return fail("Backup: %v", err)
	}
	if err := errors.Join(a.Close(), b.Close()); err != nil {
		return fail("Close: %v", err)
	}
	for _, p := range uriPaths {
		s, err := opstate.Open(p, opstate.Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, opstate.ErrInvalidPath) {
			return fail("Open(%q) = %v; want ErrInvalidPath", p, err)
		}
	}
	return 0
}

// plainPathsChild opens two paths that look special but are file names.
func plainPathsChild() int {
	for _, p := range []string{"./:memory:", "FILE:x.db"} {
		s, err := opstate.NewStore(p)
		if err == nil {
			err = errors.Join(s.Set("ns", "path", p), s.Close())
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
			return 1
		}
	}
	return 0
}

// dirNames returns the names of what dir holds.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestMemoryPaths runs in-memory stores, and Opens of paths that SQLite
// would read as URIs, in a child process whose working directory is an
// empty directory, and checks that it stays empty (the Backup goes
// elsewhere, and holds what the store held); and checks that "./:memory:"
// and "FILE:x.db", which SQLite reads as file names, are files.
func TestMemoryPaths(t *testing.T) {
	dir := t.TempDir()
	backup := filepath.Join(t.TempDir(), "copy.db")
	cmd := childCommand(t, "memory-paths", backupEnv+"="+backup)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("memory-paths child: %v\n%s", err, out)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("the child's working directory holds %q; want nothing", names)
	}
	if _, err := os.Stat(backup); err == nil {
		wantGet(t, mustOpen(t, backup, opstate.Options{}), "backup", "k", "v", true)
	} else {
		t.Errorf("the child's backup: %v", err)
	}

	dir = t.TempDir()
	cmd = childCommand(t, "plain-paths")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plain-paths child: %v\n%s", err, out)
	}
	if names, want := dirNames(t, dir), []string{":memory:", "FILE:x.db"}; !slices.Equal(names, want) {
		t.Errorf("the child's working directory holds %q; want %q", names, want)
	}
	wantGet(t, mustOpen(t, filepath.Join(dir, ":memory:"), opstate.Options{}), "ns", "path", "./:memory:", true)
}

// TestURIPathsRefused checks that Open refuses a path SQLite would read as
// a URI with ErrInvalidPath and a message saying what to pass instead.
func TestURIPathsRefused(t *testing.T) {
	for _, p := range append(slices.Clone(uriPaths), "file:"+dbPath(t)) {
		s, err := opstate.Open(p, opstate.Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, opstate.ErrInvalidPath) || !strings.Contains(fmt.Sprint(err), `":memory:"`) {
			t.Errorf(`Open(%q) = %v; want ErrInvalidPath, and a message naming ":memory:"`, p, err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("Open(%q) created a file of that name", p)
			os.Remove(p)
		}
	}
	if _, err := opstate.NewStore(""); !errors.Is(err, opstate.ErrInvalidPath) {
		t.Errorf(`NewStore("") = %v; want ErrInvalidPath`, err)
	}
}
