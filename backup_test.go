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
