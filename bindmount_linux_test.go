package opstate_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/d8da9184/opstate"
)

func init() {
	// TestSecondOpenKeepsLocks: the refused Open of a mounted file must
	// leave the locks of the Store on the file's own path in place.
	secondOpens = append(secondOpens, "mountpoint")
	setupSecond["mountpoint"] = func(t *testing.T, path string) {
		s := mustOpen(t, path, opstate.Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		mountFileIn(t, path, filepath.Dir(path), filepath.Base(path)+".mnt")
	}
}

// TestMountedFileRefused opens a database file that is itself a mount
// point, as docker -v host/state.db:/data/state.db makes one, and
// databases whose -wal, -shm or -journal is one. SQLite names the -wal and
// -shm after the path it opens, so a Store on the mount point would keep
// them beside it, where a Store on the file's own path does not look: two
// such Stores, one on each path, corrupted the file within seconds and lost
// most acknowledged writes, and one Store alone keeps its -wal in the
// mount point's directory, lost with it (a removed container). Open must
// refuse each with ErrNotDatabase, saying to mount the directory instead,
// and leave the directory it was given as it was, while the Store on the
// file's own path goes on working.
func TestMountedFileRefused(t *testing.T) {
	tests := []struct {
		name string
		// mount mounts something on or beside a database at src, which a
		// Store has open, and returns the path to open.
		mount func(t *testing.T, src string) string
	}{
		{"file", func(t *testing.T, src string) string {
			return mountFileIn(t, src, t.TempDir(), "state.db")
		}},
		{"file through a symbolic link", func(t *testing.T, src string) string {
			dst := mountFileIn(t, src, t.TempDir(), "state.db")
			link := filepath.Join(t.TempDir(), "link.db")
			if err := os.Symlink(dst, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{"file whose path the kernel escapes", func(t *testing.T, src string) string {
			dir := filepath.Join(t.TempDir(), "a dir\twith\nodd\\names")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return mountFileIn(t, src, dir, "state db")
		}},
		{"file of another file system", func(t *testing.T, _ string) string {
			src := filepath.Join(mountTmpfs(t, "size=4m"), "state.db")
			mustSet(t, mustOpen(t, src, opstate.Options{}), "ns", "tmpfs", "v")
			return mountFileIn(t, src, t.TempDir(), "state.db")
		}},
		{"-wal", func(t *testing.T, src string) string { return mountBeside(t, src, "-wal") }},
		{"-shm", func(t *testing.T, src string) string { return mountBeside(t, src, "-shm") }},
		{"-journal", func(t *testing.T, src string) string { return mountBeside(t, src, "-journal") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := dbPath(t)
			s := mustOpen(t, src, opstate.Options{})
			mustSet(t, s, "ns", "k", "before")
			path := tt.mount(t, src)
			dir := filepath.Dir(path)
			before := dirEntries(t, dir)

			s2, err := opstate.Open(path, opstate.Options{})
			if err == nil {
				s2.Close()
				t.Fatalf("Open(%q) succeeded; want ErrNotDatabase", path)
			}
			if !errors.Is(err, opstate.ErrNotDatabase) || !strings.Contains(err.Error(), "mount the directory") {
				t.Errorf("Open(%q) = %v; want ErrNotDatabase saying to mount the directory", path, err)
			}
			if after := dirEntries(t, dir); !slices.Equal(after, before) {
				t.Errorf("directory after Open = %q; want it as it was, %q", after, before)
			}
			mustSet(t, s, "ns", "k", "after")
			wantGet(t, s, "ns", "k", "after", true)
		})
	}
}

// mountFileIn creates an empty file name in dir, mounts the file src on
// it, and returns its path.
func mountFileIn(t *testing.T, src, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bindMount(t, src, dst)
	return dst
}

// mountBeside makes a database of its own, closed, and mounts a file of
// another directory on its file of the given suffix (-wal, -shm or
// -journal); it returns the database's path. src is not used: the file
// mounted is another one, as it might be another database's.
func mountBeside(t *testing.T, _ string, suffix string) string {
	t.Helper()
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "ns", "k", "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other"+suffix)
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mountFileIn(t, other, filepath.Dir(path), filepath.Base(path)+suffix)
	return path
}

// TestMountedDirectoryShared is what the refusal of a mounted file tells
// users to do: mount the directory. A Store on each of two paths of one
// database, through a directory mounted on a second directory, must share
// one write-ahead log (SQLite names it after the path, and the two
// directories are one), so that each serves what the other wrote and the
// file holds every acknowledged write of both.
func TestMountedDirectoryShared(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	bindMount(t, srcDir, dstDir)
	a := mustOpen(t, filepath.Join(srcDir, "state.db"), opstate.Options{CacheBytes: -1})
	b := mustOpen(t, filepath.Join(dstDir, "state.db"), opstate.Options{CacheBytes: -1})
	const n = 200
	for i := range n {
		mustSet(t, a, "ns", fmt.Sprint("a", i), "a")
		mustSet(t, b, "ns", fmt.Sprint("b", i), "b")
	}
	for i := range n {
		// Uncached: each read is SQLite's, through the Store's own -wal.
		wantGet(t, a, "ns", fmt.Sprint("b", i), "b", true)
		wantGet(t, b, "ns", fmt.Sprint("a", i), "a", true)
	}
	wa, err := os.Stat(filepath.Join(srcDir, "state.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := os.Stat(filepath.Join(dstDir, "state.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(wa, wb) {
		t.Errorf("the Stores' -wal files are two files; want one")
	}
	for name, s := range map[string]*opstate.Store{"a": a, "b": b} {
		if m, err := s.List("ns"); err != nil || len(m) != 2*n {
			t.Errorf("Store %s lists %d keys, %v; want %d", name, len(m), err, 2*n)
		}
	}
}
