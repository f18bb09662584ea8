package cli

import (
	"github.com/d8da9184/opstate/internal/serve"

	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServeTokensDatabase checks that serve refuses, with a message
// saying so and without creating the database, a -tokens path that is
// one of the database's files: the database file, its -wal, -shm or
// -journal, named by the same path or another spelling of it, or linked
// to it, hard or symbolic. Opening and closing such a file would drop
// the POSIX locks SQLite holds on the database in the process.
func TestServeTokensDatabase(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db") // not created yet
	db := filepath.Join(dir, "x.db")
	s := mustOpen(t, db, nil) // holds x.db, x.db-wal and x.db-shm open
	if err := s.Set("ns", "k", "v"); err != nil {
		t.Fatal(err)
	}
	link := func(name string, mk func(oldname, newname string) error, target string) string {
		p := filepath.Join(dir, name)
		if err := mk(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	symlink := link("symlink", os.Symlink, db)
	hardlink := link("hardlink", os.Link, db)
	walLink := link("wal-link", os.Symlink, db+"-wal")
	shmLink := link("shm-link", os.Link, db+"-shm")
	for _, tt := range []struct {
		name, db, tokens, file string
	}{
		{"database not created yet", fresh, fresh, fresh},
		{"journal not there", fresh, fresh + "-journal", fresh + "-journal"},
		{"database", db, db, db},
		{"another spelling", db, filepath.Join(dir, ".", "sub", "..", "x.db"), db},
		{"wal", db, db + "-wal", db + "-wal"},
		{"shm", db, db + "-shm", db + "-shm"},
		{"symbolic link", db, symlink, db},
		{"hard link", db, hardlink, db},
		{"symbolic link to the wal", db, walLink, db + "-wal"},
		{"hard link to the shm", db, shmLink, db + "-shm"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-db", tt.db, "serve", "-addr", "127.0.0.1:0", "-tokens", tt.tokens}
			code, stdout, stderr := runCLI(t, "", args...)
			want := "-tokens " + tt.tokens + " is the database's file " + tt.file
			if code != exitFail || stdout != "" || !strings.Contains(stderr, want) {
				t.Errorf("%q = %d, %q, %q; want 1 and a message with %q", args, code, stdout, stderr, want)
			}
			if _, err := os.Stat(fresh); err == nil {
				t.Fatalf("%q created the database", args)
			}
		})
	}
	// A token file of its own beside the database is taken.
	own := filepath.Join(dir, "x.db-tokens")
	writeTokens(t, own, tokenLine("ci", "read", "s"))
	if _, err := serve.LoadTokens(own, dbFiles(db)...); err != nil {
		t.Errorf("LoadTokens(%q, dbFiles(%q)) = %v; want nil", own, db, err)
	}
}

// TestServeReloadDatabase checks that SIGHUP refuses a token file that
// has become a link to the database serve holds open, leaving the
// tokens before in place and the database served.
func TestServeReloadDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	tokens := filepath.Join(dir, "tokens")
	const secret = "reader-secret"
	writeTokens(t, tokens, tokenLine("reader", "write", secret))
	p, base := startServe(t, db, "-tokens", tokens)
	if code, _ := call(t, "PUT", base+"/v1/namespaces/ns/keys/k", secret, "v"); code != 204 {
		t.Fatalf("PUT = %d; want 204", code)
	}
	if err := os.Remove(tokens); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(db, tokens); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	want := "reload " + tokens + ": " + tokens + " is the database's file " + db
	p.WaitStderr(t, want)
	// The tokens before still admit, and the Store still writes.
	if code, _ := call(t, "PUT", base+"/v1/namespaces/ns/keys/k", secret, "w"); code != 204 {
		t.Errorf("PUT after the SIGHUP = %d; want 204", code)
	}
	if code, body := call(t, "GET", base+"/v1/namespaces/ns/keys/k", secret, ""); code != 200 || body != "w" {
		t.Errorf("GET after the SIGHUP = %d %q; want 200 w", code, body)
	}
	p.Signal(t, syscall.SIGTERM)
	code, stderr := p.Exit(t)
	if code != 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "the tokens loaded before stay") {
		t.Errorf("after SIGHUP and SIGTERM: exit %d, stderr %q; want 0 and only the refused reload's line", code, stderr)
	}
}
