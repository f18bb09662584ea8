package check

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// errorsOf checks that the Store reads the driver's errors as it reads
// modernc.org/sqlite's: a write lock the application holds past the
// Store's BusyTimeout fails a write with ErrBusy, after the timeout and
// well before the application's own; once the lock is released the write
// goes through.
func errorsOf(t *testing.T, d Driver) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := handle(t, d, path)
	const busy = 200 * time.Millisecond
	s := mustOpenDB(t, db, opstate.Options{BusyTimeout: busy})
	if err := s.Set("ns", "k", "before"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS app (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "INSERT INTO app DEFAULT VALUES"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Set("ns", "k", "during")
	waited := time.Since(start)
	if !errors.Is(err, opstate.ErrBusy) {
		t.Errorf("Set while the application holds the write lock = %v; want ErrBusy", err)
	}
	if waited < busy || waited > busy+2*time.Second {
		t.Errorf("Set failed after %v; want about the BusyTimeout, %v", waited, busy)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("ns", "k", "after"); err != nil {
		t.Fatalf("Set after the lock was released: %v", err)
	}
	if v, ok, err := s.Lookup("ns", "k"); err != nil || !ok || v != "after" {
		t.Errorf("Lookup = %q, %v, %v; want \"after\"", v, ok, err)
	}
}
