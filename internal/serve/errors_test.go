package serve_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
	_ "modernc.org/sqlite"
)

// TestBusy checks that a write the Store gives up on, another
// connection holding the file's write lock past BusyTimeout (ErrBusy),
// is answered 503 with Retry-After, and changes nothing.
func TestBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := serveStore(t, s, serve.Options{})
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	resp, body := f.want(t, 503, request{method: "PUT", path: keyPath("ns", "k"), body: "v"})
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"error":"opstate: set \"ns\"/\"k\"`) {
		t.Errorf("503 with Retry-After %q, body %q; want Retry-After and the Store's error", resp.Header.Get("Retry-After"), body)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Lookup("ns", "k"); ok {
		t.Error("a write answered 503 stored its value")
	}
	f.want(t, 204, request{method: "PUT", path: keyPath("ns", "k"), body: "v"})
}
