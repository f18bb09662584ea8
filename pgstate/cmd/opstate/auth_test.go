package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// closedPortURL returns the URL of a PostgreSQL server on a port of
// 127.0.0.1 that nothing listens on, with a password.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "postgres://app:s3cret-down@" + addr + "/ops?sslmode=disable"
}

// TestServerDown checks that a server that is down (a closed port) gives,
// for every way of naming it, exit 1 at once with a message naming the
// refused connection, and never the password: the connection is not
// retried until connectTimeout.
func TestServerDown(t *testing.T) {
	db := closedPortURL(t)
	for _, h := range hows {
		start := time.Now()
		code, stdout, stderr := h.runCLI(t, db, "", "get", "flags", "dark_mode")
		took := time.Since(start)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "connect") || !strings.Contains(stderr, "refused") {
			t.Errorf("%s: get from %s = %d, %q, stderr %q; want 1, \"\", a message naming the refused connection", h.name, db, code, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, "s3cret") {
			t.Errorf("%s: get from %s printed the password: %q", h.name, db, stderr)
		}
		if took >= connectTimeout/2 {
			t.Errorf("%s: get from a closed port took %v; want it refused at once, not retried until connectTimeout %v", h.name, took, connectTimeout)
		}
	}
}

// TestServerSilent checks that a server that accepts the connection but
// never answers is given up on after connectTimeout, with exit 1, a
// message saying so and not the password.
func TestServerSilent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // reads what the client sends, answers nothing
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	old := connectTimeout
	connectTimeout = 500 * time.Millisecond
	t.Cleanup(func() { connectTimeout = old })

	args := []string{"-db", "postgres://app:s3cret-silent@" + l.Addr().String() + "/ops?sslmode=disable", "get", "flags", "dark_mode"}
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		done <- result{code, stdout.String(), stderr.String()}
	}()
	select {
	case r := <-done:
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "gave up after 500ms") {
			t.Errorf("run(%q) with a silent server = %d, %q, stderr %q; want 1, \"\", a message saying it gave up after 500ms",
				args, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cret") {
			t.Errorf("run(%q) with a silent server printed the password: %q", args, r.stderr)
		}
	case <-time.After(10 * connectTimeout):
		t.Fatalf("run(%q) with a silent server did not end within %v; want it to give up after connectTimeout %v",
			args, 10*connectTimeout, connectTimeout)
	}
}

// TestWrongPassword checks that a login refused for its password, given
// in the URL's user information or in its password parameter, gives exit
// 1 and a message naming authentication as the cause, and never prints
// the password, right or wrong. The role and its password are the test's
// own, and the right password must work, so that the refusal is the
// server checking it.
func TestWrongPassword(t *testing.T) {
	db := schemaURL(t)
	role, password := createRole(t, db)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	withUser := func(password string) string {
		v := *u
		v.User = url.UserPassword(role, password)
		return v.String()
	}
	withParam := func(password string) string {
		v := *u
		q := v.Query()
		q.Set("user", role)
		q.Set("password", password)
		v.RawQuery = q.Encode()
		return v.String()
	}
	const wrong = "wrong-Pa55word"
	for _, h := range hows {
		h.mustRun(t, withUser(password), "set", "flags", "dark_mode", "on")
		if got := h.mustRun(t, withParam(password), "get", "flags", "dark_mode"); got != "on\n" {
			t.Fatalf("%s: get as %s with the right password printed %q; want %q", h.name, role, got, "on\n")
		}
		for _, bad := range []string{withUser(wrong), withParam(wrong)} {
			for _, verb := range [][]string{{"get", "flags", "dark_mode"}, {"set", "flags", "dark_mode", "off"}} {
				code, stdout, stderr := h.runCLI(t, bad, "", verb...)
				if code == 0 {
					t.Skipf("the server let %s in with a wrong password (its pg_hba.conf trusts this connection): a refused login cannot be tested", role)
				}
				if code != 1 || stdout != "" || !strings.Contains(stderr, "authentication") {
					t.Errorf("%s: run %q with a wrong password = %d, %q, stderr %q; want 1, \"\", a message naming authentication",
						h.name, verb, code, stdout, stderr)
				}
				if strings.Contains(stdout+stderr, wrong) || strings.Contains(stdout+stderr, password) {
					t.Errorf("%s: run %q with a wrong password printed a password: stdout %q, stderr %q", h.name, verb, stdout, stderr)
				}
			}
		}
	}
	if got := hows[0].mustRun(t, withUser(password), "get", "flags", "dark_mode"); got != "on\n" {
		t.Errorf("get after the refused sets printed %q; want %q", got, "on\n")
	}
}

// createRole creates a login role with a password of its own, allowed to
// use and create in the schema of db, and drops it, and what it owns, at
// the end of the test.
func createRole(t *testing.T, db string) (role, password string) {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	b := make([]byte, 12)
	rand.Read(b)
	role, password = "opstate_test_role_"+hex.EncodeToString(b[:6]), "Pw-"+hex.EncodeToString(b[6:])
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.BaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'",
		"GRANT USAGE, CREATE ON SCHEMA " + schema + " TO " + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, pgtest.BaseDSN())
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	return role, password
}
