package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestVerbs runs every verb on a PostgreSQL database named by -db and by
// OPSTATE_DB: each does what it does on SQLite, in the same output format
// and exit status, except backup, which fails (exit 1) naming pg_dump and
// creates nothing; a value PostgreSQL cannot store fails (exit 1) and
// stores nothing.
func TestVerbs(t *testing.T) {
	for _, h := range hows {
		t.Run(h.name, func(t *testing.T) {
			db := schemaURL(t)
			want := func(stdin string, verb []string, wantCode int, wantOut, wantErr string) {
				t.Helper()
				code, stdout, stderr := h.runCLI(t, db, stdin, verb...)
				if code != wantCode || stdout != wantOut || !strings.Contains(stderr, wantErr) || (wantErr == "" && stderr != "") {
					t.Errorf("%s: run %q = %d, %q, stderr %q; want %d, %q, stderr holding %q",
						h.name, verb, code, stdout, stderr, wantCode, wantOut, wantErr)
				}
			}
			// A fresh schema: the table is made, and nothing is found.
			want("", []string{"get", "flags", "dark_mode"}, 1, "", "")
			want("", []string{"ns"}, 0, "", "")

			want("", []string{"set", "flags", "dark_mode", "on"}, 0, "", "")
			want("", []string{"get", "flags", "dark_mode"}, 0, "on\n", "")
			want("line1\nline2\n", []string{"set", "flags", "motd", "-"}, 0, "", "")
			want("", []string{"get", "flags", "motd"}, 0, "line1\nline2\n\n", "")
			want("", []string{"list", "flags"}, 0, "dark_mode\ton\nmotd\t\"line1\\nline2\\n\"\n", "")
			want("", []string{"list", "-json", "flags"}, 0, `{"dark_mode":"on","motd":"line1\nline2\n"}`+"\n", "")

			// PostgreSQL's text holds no NUL byte: refused, nothing stored.
			want("a\x00b", []string{"set", "flags", "blob", "-"}, 1, "", "not storable as text")
			want("", []string{"get", "flags", "blob"}, 1, "", "")

			// -ttl sets expires_at by the server's clock; set without it
			// clears it.
			want("", []string{"set", "-ttl", "1h", "locks", "deploy", "alice"}, 0, "", "")
			if left := expiresIn(t, db, "locks", "deploy"); left == nil || *left < 59*time.Minute || *left > time.Hour {
				t.Errorf("%s: after set -ttl 1h, expires_at - now() = %v; want within (59m, 1h]", h.name, left)
			}
			want("", []string{"set", "locks", "deploy", "bob"}, 0, "", "")
			if left := expiresIn(t, db, "locks", "deploy"); left != nil {
				t.Errorf("%s: after set without -ttl, expires_at - now() = %v; want NULL", h.name, *left)
			}
			want("", []string{"ns"}, 0, "flags\t2\nlocks\t1\n", "")

			want("", []string{"del", "flags", "dark_mode"}, 0, "", "")
			want("", []string{"get", "flags", "dark_mode"}, 1, "", "")
			want("", []string{"del", "flags", "dark_mode"}, 0, "", "") // already gone

			// Keys that expire: gone for get and list, then swept.
			want("", []string{"set", "-ttl", "100ms", "tmp", "a", "1"}, 0, "", "")
			want("", []string{"set", "-ttl", "100ms", "tmp", "b", "2"}, 0, "", "")
			want("", []string{"set", "tmp", "c", "keep"}, 0, "", "")
			time.Sleep(300 * time.Millisecond)
			want("", []string{"get", "tmp", "a"}, 1, "", "")
			want("", []string{"list", "tmp"}, 0, "c\tkeep\n", "")
			want("", []string{"sweep"}, 0, "2\n", "")
			want("", []string{"sweep"}, 0, "0\n", "")

			want("", []string{"drop", "flags"}, 0, "", "")
			want("", []string{"list", "flags"}, 0, "", "")
			want("", []string{"ns"}, 0, "locks\t1\ntmp\t1\n", "")

			dest := filepath.Join(t.TempDir(), "copy.db")
			want("", []string{"backup", dest}, 1, "", "pg_dump")
			if _, err := os.Stat(dest); err == nil {
				t.Errorf("%s: backup on PostgreSQL created %s", h.name, dest)
			}
		})
	}
}

// expiresIn returns expires_at - now() of the row ns/key, nil when NULL,
// read with pgx on the database of url.
func expiresIn(t *testing.T, url, ns, key string) *time.Duration {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ms *float64
	if err := conn.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now()) * 1000 FROM operational_state
		WHERE namespace = $1 AND key = $2`, ns, key).Scan(&ms); err != nil {
		t.Fatalf("expires_at of %q/%q: %v", ns, key, err)
	}
	if ms == nil {
		return nil
	}
	d := time.Duration(*ms * float64(time.Millisecond))
	return &d
}

// TestStoreInterop checks that the command and a Store opened with
// pgstate.Open read what the other wrote, on the same schema, whatever
// bytes PostgreSQL's text holds.
func TestStoreInterop(t *testing.T) {
	for _, h := range hows {
		t.Run(h.name, func(t *testing.T) {
			db := schemaURL(t)
			const value = "-tab\there, newline\n, caf\u00e9 \U0001F680, \"quoted\""
			h.mustRun(t, db, "set", "flags", "from_cli", value)
			h.mustRun(t, db, "set", "-ttl", "1h", "locks", "deploy", "alice")
			s := mustOpen(t, db)
			for _, kv := range [][3]string{{"flags", "from_cli", value}, {"locks", "deploy", "alice"}} {
				got, ok, err := s.Lookup(kv[0], kv[1])
				if err != nil || !ok || got != kv[2] {
					t.Errorf("%s: Lookup(%q, %q) after opstate set = %q, %v, %v; want %q, true, nil", h.name, kv[0], kv[1], got, ok, err, kv[2])
				}
			}

			if err := s.Set("flags", "from_store", value); err != nil {
				t.Fatal(err)
			}
			if got := h.mustRun(t, db, "get", "flags", "from_store"); got != value+"\n" {
				t.Errorf("%s: get after Store.Set printed %q; want %q", h.name, got, value+"\n")
			}
			if err := s.SetWithTTL("flags", "lease", "v", time.Hour); err != nil {
				t.Fatal(err)
			}
			if got, want := h.mustRun(t, db, "ns"), "flags\t3\nlocks\t1\n"; got != want {
				t.Errorf("%s: ns after Store writes printed %q; want %q", h.name, got, want)
			}
			if err := s.DeleteNamespace("flags"); err != nil {
				t.Fatal(err)
			}
			if got := h.mustRun(t, db, "list", "flags"); got != "" {
				t.Errorf("%s: list after Store.DeleteNamespace printed %q; want \"\"", h.name, got)
			}
		})
	}
}
