package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestBackup copies a store while a writer keeps writing to it. The copy
// must open as a store with mode 0600, hold every key acknowledged before
// Backup began and pass integrity_check; the writer must not be stopped.
// A path that exists is refused and left as it was, and a closed Store
// says ErrClosed.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s := mustOpen(t, path, opstate.Options{})
	for i := range 500 {
		mustSet(t, s, "before", fmt.Sprint(i), fmt.Sprint("v", i))
	}
	var stop atomic.Bool
	var during atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if err := s.Set("during", fmt.Sprint(i), "v"); err != nil {
				t.Errorf("Set during Backup: %v", err)
				return
			}
			during.Add(1)
		}
	})
	copyPath := filepath.Join(dir, "copy.db")
	err := s.Backup(context.Background(), copyPath)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup = %v", err)
	}
	t.Logf("%d writes went on during the backup", during.Load())
	if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v; want mode 0600", fi, err)
	}
	c := mustOpen(t, copyPath, opstate.Options{CacheBytes: -1})
	if m, err := c.List("before"); err != nil || len(m) != 500 || m["499"] != "v499" {
		t.Errorf("backup holds %d keys of \"before\", %v; want all 500", len(m), err)
	}
	var check string
	if err := sqlDB(t, copyPath).QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check of the backup = %q, %v; want ok", check, err)
	}

	// A path that exists is left alone: another file, or the store itself.
	other := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(other, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{other, path, copyPath} {
		if err := s.Backup(context.Background(), p); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Backup(%s) = %v; want fs.ErrExist", filepath.Base(p), err)
		}
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "keep" {
		t.Errorf("Backup changed the existing file: %q, %v", b, err)
	}
	wantGet(t, s, "before", "1", "v1", true)

	// A cancelled copy leaves nothing behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cancelled := filepath.Join(dir, "cancelled.db")
	if err := s.Backup(ctx, cancelled); err == nil {
		t.Errorf("Backup with a cancelled context succeeded")
	}
	if _, err := os.Stat(cancelled); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cancelled Backup left %s: %v", cancelled, err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(context.Background(), filepath.Join(dir, "late.db")); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Backup after Close = %v; want ErrClosed", err)
	}
}

// TestBackupNotBesideDatabase gives Backup a path that is the name of a
// database's -journal, -wal or -shm file: of the open store's own file, or
// of another database in the directory. SQLite takes a file at such a name
// for that database's journal, log or WAL index: a -journal beside the
// open store makes every other Open of it fail with ErrBusy (a hot
// journal to roll back) and is deleted as an invalid journal by the next
// Open after Close, so the backup is lost. Backup must refuse each such
// path and create nothing there; Open of the store must go on working.
func TestBackupNotBesideDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	other := filepath.Join(dir, "other.db")
	mustOpen(t, other, opstate.Options{}).Close()
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "ns", "k", "v")
	for _, dest := range []string{path + "-journal", other + "-journal", other + "-wal", other + "-shm"} {
		if err := s.Backup(context.Background(), dest); err == nil {
			t.Errorf("Backup(%s) succeeded; want it refused", filepath.Base(dest))
		}
		if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Backup(%s) left a file there: %v", filepath.Base(dest), err)
			os.Remove(dest) // not a file a connection of this process has open
		}
	}
	s2, err := opstate.Open(path, opstate.Options{BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open of the store after the refused Backups = %v", err)
	}
	wantGet(t, s2, "ns", "k", "v", true)
	s2.Close()
}
