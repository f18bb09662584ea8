//go:build unix

package opstate_test

import (
	"errors"
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
// whose -journal is a directory. Open must refuse each with ErrNotDatabase
// (the dangling link too, as README promises), and leave the directory
// exactly as it was: SQLite must not have opened the path, which for a
// device creates a world-writable NAME-journal beside it, and for a FIFO
// can block.
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
		}, opstate.ErrNotDatabase}, // as README's Guarantees table promises
		{"-journal is a directory", func(t *testing.T, path string) bool {
			s := mustOpen(t, path, opstate.Options{})
			mustSet(t, s, "ns", "k", "v")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return os.Mkdir(path+"-journal", 0o700) == nil
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
