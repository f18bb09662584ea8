package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cli"
	"github.com/d8da9184/opstate/internal/cli/clitest"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
)

func TestMain(m *testing.M) {
	// Run again by clitest.Command, this test binary is the command.
	clitest.RunChild(run)
	// A test that runs the command without -db uses OPSTATE_DB if it is
	// set, and must not touch the database of the shell that runs the
	// tests; the tests of OPSTATE_DB set it themselves.
	os.Unsetenv(cli.DBEnv)
	os.Exit(m.Run())
}

// schemaURL returns a postgres:// URL, as -db takes one, of a fresh
// schema of the test's own (pgtest.Schema); the test skips without a
// server, unless pgtest.Required.
func schemaURL(t *testing.T) string {
	t.Helper()
	dsn := pgtest.Schema(t)
	if cli.IsPostgresURL(dsn) {
		return dsn
	}
	// A key=value DSN, "search_path=..." alone under pg_virtualenv: each
	// setting becomes a URL parameter, which pgx reads as the same
	// setting, and libpq's PG* variables supply the rest, as they do for
	// the DSN.
	q := url.Values{}
	for _, kv := range strings.Fields(dsn) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.ContainsAny(v, `'\`) {
			t.Fatalf("cannot write the DSN %q as a URL", dsn)
		}
		q.Set(k, v)
	}
	return "postgres:///?" + q.Encode()
}

// how is a way of naming the database to the command.
type how struct {
	name string
	// args returns the command line that runs verb on db, and the value
	// of OPSTATE_DB for it.
	args func(db string, verb ...string) (args []string, env string)
}

// hows are the two ways: -db URL, and OPSTATE_DB=URL.
var hows = []how{
	{"-db", func(db string, verb ...string) ([]string, string) { return append([]string{"-db", db}, verb...), "" }},
	{cli.DBEnv, func(db string, verb ...string) ([]string, string) { return verb, db }},
}

// runCLI runs the command in-process, naming db as h does, with the
// given standard input, and returns its exit status and output.
func (h how) runCLI(t *testing.T, db, stdin string, verb ...string) (code int, stdout, stderr string) {
	t.Helper()
	args, env := h.args(db, verb...)
	t.Setenv(cli.DBEnv, env)
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustRun runs verb on db as h names it and fails the test unless it
// exits 0 with nothing on standard error. It returns standard output.
func (h how) mustRun(t *testing.T, db string, verb ...string) string {
	t.Helper()
	code, stdout, stderr := h.runCLI(t, db, "", verb...)
	if code != 0 || stderr != "" {
		t.Fatalf("%s: run %q = %d, stderr %q; want 0 and no stderr", h.name, verb, code, stderr)
	}
	return stdout
}

// mustOpen opens a Store on the database of url through the library, as
// an agent would, and closes it at the end of the test.
func mustOpen(t *testing.T, url string) *opstate.Store {
	t.Helper()
	s, err := pgstate.Open(context.Background(), url, opstate.Options{SweepInterval: -1})
	if err != nil {
		t.Fatalf("pgstate.Open error: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
