package check

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// ownership attacks "the Store does not own db": while it is open it holds
// one connection, and no more once idle; Close leaves db open and gives it
// no connection back with the Store's settings (a busy timeout of 0, which
// would make the application's statements fail at once on a lock).
func ownership(t *testing.T, d Driver) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := handle(t, d, path)
	db.SetMaxOpenConns(2)
	s, err := opstate.OpenDB(db, opstate.Options{SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := s.Set("ns", "k", string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.List("ns"); err != nil { // a read on the pool
			t.Fatal(err)
		}
	}
	if n := db.Stats().InUse; n != 1 {
		t.Errorf("an idle Store holds %d connections of the pool; want 1, its writer", n)
	}
	// The application's queries go on beside the Store on the one
	// connection left.
	mustWork(t, db)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().InUse; n != 0 {
		t.Errorf("after Close, %d connections of the pool are in use; want 0", n)
	}
	// Both connections the pool allows, at once: none may be the Store's
	// writer handed back.
	ctx := context.Background()
	var conns []*sql.Conn
	for range 2 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("after Close, a connection of the pool: %v", err)
		}
		conns = append(conns, c)
		var ms int
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err != nil {
			t.Fatal(err)
		}
		if ms != appBusyMS {
			t.Errorf("after Close, a connection of the pool has busy_timeout %d; want the application's %d", ms, appBusyMS)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM operational_state").Scan(&n); err != nil || n != 1 {
		t.Errorf("after Close, the application counts %d rows of the Store's table, %v; want 1", n, err)
	}
	if err := s.Set("ns", "k", "v"); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Set after Close = %v; want ErrClosed", err)
	}
}
