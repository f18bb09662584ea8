package persist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCreate opens one new path from several goroutines at once,
// round after round, as processes starting together on a fresh machine
// do. Every Open must succeed: none may take the file that another is just
// creating for a file with two hard links (which checkKind refuses). It
// checks what is at the path as Open does, with prepareFile, to run
// thousands of rounds in a second; the code that linked a temporary file
// into place failed within a small fraction of the rounds run here.
func TestConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	for round := range 5000 {
		path := filepath.Join(dir, fmt.Sprint(round, ".db"))
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = prepareFile(path) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: concurrent Opens of a new file: %v", round, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 5000 {
		t.Errorf("directory holds %d entries; want the 5000 database files and nothing else", len(ents))
	}
}

// TestCreateLongName creates a database whose name is as long as SQLite
// can use: 247 bytes, so that its -journal (which the first migration
// writes) takes up the file system's 255. Open must not need a longer name
// of its own for creating it.
func TestCreateLongName(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("x", 244)+".db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(a name of %d bytes) = %v", len(filepath.Base(path)), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("created file: %v, %v; want mode 0600", fi, err)
	}
}
