package check

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// refused attacks OpenDB's input: what it cannot serve must fail with a
// clear error, take no connection for good and leave the file as it was.
func refused(t *testing.T, d Driver) {
	t.Run("nil", func(t *testing.T) {
		if s, err := opstate.OpenDB(nil, opstate.Options{}); err == nil {
			s.Close()
			t.Fatal("OpenDB(nil) succeeded")
		}
	})
	t.Run("one connection", func(t *testing.T) {
		db := handle(t, d, filepath.Join(t.TempDir(), "state.db"))
		db.SetMaxOpenConns(1)
		s, err := opstate.OpenDB(db, opstate.Options{})
		if err == nil {
			s.Close()
			t.Fatal("OpenDB over a pool of one connection succeeded; want an error (the Store would hold it for ever)")
		}
		if !strings.Contains(err.Error(), "SetMaxOpenConns") {
			t.Errorf("error %q; want it to say how to allow more connections", err)
		}
		mustWork(t, db)
	})
	t.Run("no connection free", func(t *testing.T) {
		db := handle(t, d, filepath.Join(t.TempDir(), "state.db"))
		db.SetMaxOpenConns(2)
		ctx := context.Background()
		for range 2 { // the application holds every connection
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		const busy = 100 * time.Millisecond
		start := time.Now()
		s, err := opstate.OpenDB(db, opstate.Options{BusyTimeout: busy})
		if err == nil {
			s.Close()
			t.Fatal("OpenDB with every connection of the pool held succeeded")
		}
		if waited := time.Since(start); waited < busy || waited > busy+2*time.Second {
			t.Errorf("OpenDB failed after %v; want about the BusyTimeout, %v", waited, busy)
		}
		if !strings.Contains(err.Error(), "busy timeout") {
			t.Errorf("error %q; want it to say no connection came within the busy timeout", err)
		}
	})
	t.Run("memory", func(t *testing.T) {
		db, err := sql.Open(d.Name, ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s, err := opstate.OpenDB(db, opstate.Options{})
		if err == nil {
			s.Close()
			t.Fatal("OpenDB over an in-memory database succeeded; want an error (nobody else could reach it)")
		}
		t.Logf("OpenDB(:memory:) = %v", err)
		if db.Stats().InUse != 0 {
			t.Errorf("after the refusal, %d connections are in use; want 0", db.Stats().InUse)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		garbage := []byte(strings.Repeat("not an SQLite database\n", 400))
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		db := handle(t, d, path)
		s, err := opstate.OpenDB(db, opstate.Options{})
		if err == nil {
			s.Close()
			t.Fatal("OpenDB over a file of text succeeded")
		}
		if !errors.Is(err, opstate.ErrNotDatabase) {
			t.Errorf("OpenDB over a file of text = %v; want ErrNotDatabase", err)
		}
		if got, _ := os.ReadFile(path); string(got) != string(garbage) {
			t.Error("the refused file was changed")
		}
	})
	t.Run("read-only", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		// An SQLite file of the application's, with a table of its own,
		// that the Store has never seen.
		rw := handle(t, d, path)
		if _, err := rw.Exec("CREATE TABLE app (id INTEGER PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		rw.Close()
		ro, err := sql.Open(d.Name, d.DSN(path, appBusyMS, true))
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		s, err := opstate.OpenDB(ro, opstate.Options{})
		if err == nil {
			s.Close()
			t.Fatal("OpenDB over a read-only handle of a file without the Store's table succeeded")
		}
		if !errors.Is(err, opstate.ErrReadOnly) {
			t.Errorf("OpenDB over a read-only handle = %v; want ErrReadOnly", err)
		}
	})
}

// mustWork checks that the application's handle still works: a query on
// a connection of its own.
func mustWork(t *testing.T, db *sql.DB) {
	t.Helper()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("the application's handle: SELECT 1 = %d, %v", one, err)
	}
}
