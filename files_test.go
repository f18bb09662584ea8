//go:build unix

package opstate_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/d8da9184/opstate"
)

// TestNotRegularFiles gives Open paths that are no regular file: a copy of
// the character device /dev/null, a FIFO, a Unix socket, symbolic links to
// a device and to a directory, a dangling symbolic link, and a database
// whose -journal is a directory or whose -wal, -shm or -journal is a
// symbolic link, beside an existing database or a new one. Open must
// refuse each with ErrNotDatabase (the dangling link too, as
// docs/guarantees.md promises), and leave the directory exactly as it was: SQLite must not
// have opened the path, which for a device creates a world-writable
// NAME-journal beside it, and for a FIFO can block.
func TestNotRegularFiles(t *testing.T) {
	tests := []struct {
		name string
		// make creates what is at path; it returns false to skip.
		make    func(t *testing.T, path string) bool
		wantErr error // nil: any error
	}{
		{"character device", func(t *testing.T, path string) bool {
			err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(1<<8|3)) // 1,3: a null device
			if err != nil {
				t.Skipf("mknod (needs root): %v", err)
			}
			return true
		}, opstate.ErrNotDatabase},
		{"FIFO", func(t *testing.T, path string) bool {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			return true
		}, opstate.ErrNotDatabase},
		{"socket", func(t *testing.T, path string) bool {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Skipf("listen on a Unix socket: %v", err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
			return true
		}, opstate.ErrNotDatabase},
		{"symlink to a device", func(t *testing.T, path string) bool {
			dev := path + ".null"
			if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, int(1<<8|3)); err != nil {
				t.Skipf("mknod (needs root): %v", err)
			}
			return os.Symlink(dev, path) == nil
		}, opstate.ErrNotDatabase},
		{"symlink to a directory", func(t *testing.T, path string) bool {
			if err := os.Mkdir(path+".dir", 0o700); err != nil {
				t.Fatal(err)
			}
			return os.Symlink(path+".dir", path) == nil
		}, opstate.ErrNotDatabase},
		{"dangling symlink", func(t *testing.T, path string) bool {
			return os.Symlink(path+".nowhere", path) == nil
		}, opstate.ErrNotDatabase}, // as docs/guarantees.md promises
		{"-journal is a directory", func(t *testing.T, path string) bool {
			s := mustOpen(t, path, opstate.Options{})
			mustSet(t, s, "ns", "k", "v")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return os.Mkdir(path+"-journal", 0o700) == nil
		}, opstate.ErrNotDatabase},
		{"-journal is a directory, new database", func(t *testing.T, path string) bool {
			return os.Mkdir(path+"-journal", 0o700) == nil
		}, opstate.ErrNotDatabase},
		// SQLite refuses to open a -wal or -shm through a symbolic link,
		// but only once it has begun: it may have created the -wal. Its
		// error says "unable to open database file".
		{"-wal is a symbolic link", func(t *testing.T, path string) bool {
			return closedDatabase(t, path) && linkBeside(t, path, "-wal", true)
		}, opstate.ErrNotDatabase},
		{"-shm is a symbolic link", func(t *testing.T, path string) bool {
			return closedDatabase(t, path) && linkBeside(t, path, "-shm", true)
		}, opstate.ErrNotDatabase},
		{"-shm is a symbolic link to nothing", func(t *testing.T, path string) bool {
			return closedDatabase(t, path) && linkBeside(t, path, "-shm", false)
		}, opstate.ErrNotDatabase},
		{"-journal is a symbolic link", func(t *testing.T, path string) bool {
			return closedDatabase(t, path) && linkBeside(t, path, "-journal", true)
		}, opstate.ErrNotDatabase},
		{"-journal is a symbolic link to nothing, new database", func(t *testing.T, path string) bool {
			return linkBeside(t, path, "-journal", false)
		}, opstate.ErrNotDatabase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if !tt.make(t, path) {
				t.Fatal("could not make the path")
			}
			before := dirEntries(t, dir)
			s, err := opstate.NewStore(path)
			if err == nil {
				s.Close()
				t.Fatalf("NewStore(%s) succeeded; want an error", tt.name)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("NewStore(%s) = %v; want %v", tt.name, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "opstate: ") {
				t.Errorf("NewStore(%s) = %q; want an error starting with \"opstate: \"", tt.name, err)
			}
			if after := dirEntries(t, dir); !slices.Equal(before, after) {
				t.Errorf("directory after NewStore = %q; want it as it was, %q", after, before)
			}
		})
	}
}

// closedDatabase makes a database at path with a key in it, and closes it.
func closedDatabase(t *testing.T, path string) bool {
	t.Helper()
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "ns", "k", "v")
	return s.Close() == nil
}

// linkBeside makes the database file of the given suffix (-wal, -shm or
// -journal) a symbolic link to a file beside it, which exists if exists.
func linkBeside(t *testing.T, path, suffix string, exists bool) bool {
	t.Helper()
	target := path + ".elsewhere" + suffix
	if exists {
		if err := os.WriteFile(target, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return os.Symlink(target, path+suffix) == nil
}

// dirEntries returns the names and modes of what dir holds.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name()+" "+e.Type().String())
	}
	return out
}

// TestSymlinkedPathsShareLog opens one database through its own path and
// through a symbolic link, to the file from another directory or to its
// directory. SQLite names the -wal and -shm after the path it opens, so
// two names of one file that reached two logs would corrupt it, as two
// hard links or a mounted file do; SQLite follows links to the file before
// naming them, and a linked directory is the same directory. The Stores
// must share one log: each, uncached, serves what the other just wrote,
// and nothing is created beside the link.
func TestSymlinkedPathsShareLog(t *testing.T) {
	tests := []struct {
		name string
		// link makes a symbolic link to the database at path, or to its
		// directory, and returns the path through it.
		link func(t *testing.T, path string) string
	}{
		{"to the file", func(t *testing.T, path string) string {
			link := filepath.Join(t.TempDir(), "link.db")
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{"to the directory", func(t *testing.T, path string) string {
			dir := filepath.Join(t.TempDir(), "linkdir")
			if err := os.Symlink(filepath.Dir(path), dir); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, filepath.Base(path))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			a := mustOpen(t, path, opstate.Options{CacheBytes: -1})
			link := tt.link(t, path)
			before := dirEntries(t, filepath.Dir(link))
			b := mustOpen(t, link, opstate.Options{CacheBytes: -1})
			for i := range 100 {
				k := fmt.Sprint("k", i)
				mustSet(t, b, "ns", k, "b")
				wantGet(t, a, "ns", k, "b", true)
				mustSet(t, a, "ns", k, "a")
				wantGet(t, b, "ns", k, "a", true)
			}
			if after := dirEntries(t, filepath.Dir(link)); !slices.Equal(after, before) {
				t.Errorf("the link's directory holds %q after the Store wrote; want %q", after, before)
			}
		})
	}
}
