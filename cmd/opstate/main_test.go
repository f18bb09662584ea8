package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cli"
)

func TestMain(m *testing.M) {
	// The command run without -db uses OPSTATE_DB if it is set: the tests
	// must not touch the database of the shell that runs them.
	os.Unsetenv(cli.DBEnv)
	os.Exit(m.Run())
}

// documentedSyncInterval is the default Options.SyncInterval as README.md,
// docs/options.md and the opstate package document it.
const documentedSyncInterval = 5 * time.Millisecond

// syncSlack is the scheduling delay allowed on top of SyncInterval before a
// running Store must serve a write made by another process: the tests run
// with -race on a shared 2-core machine, where the Store's watcher
// goroutine, its PRAGMA data_version query and the polling Get can each be
// held up by tens of milliseconds.
const syncSlack = 250 * time.Millisecond

// TestBinary builds the command and runs it, with no -db, in a fresh
// directory, as an operator would on a fresh clone; then checks that a
// running Store serves a value the command set within its SyncInterval.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	bin := filepath.Join(t.TempDir(), "opstate")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	cli := func(stdin string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = work
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("run %q: %v", args, err)
			}
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	if code, _, stderr := cli("", "set", "flags", "dark_mode", "on"); code != 0 {
		t.Fatalf("opstate set = %d (%s); want 0", code, stderr)
	}
	if code, stdout, _ := cli("", "get", "flags", "dark_mode"); code != 0 || stdout != "on\n" {
		t.Errorf("opstate get = %d, %q; want 0, %q", code, stdout, "on\n")
	}
	if _, err := os.Stat(filepath.Join(work, "opstate.db")); err != nil {
		t.Errorf("default database not created in the working directory: %v", err)
	}
	if code, stdout, _ := cli("", "get", "flags", "missing"); code != 1 || stdout != "" {
		t.Errorf("opstate get missing = %d, %q; want 1, \"\"", code, stdout)
	}
	const blob = "a\x00\xff\n"
	if code, _, stderr := cli(blob, "set", "blobs", "b", "-"); code != 0 {
		t.Fatalf("opstate set - = %d (%s); want 0", code, stderr)
	}
	if code, stdout, _ := cli("", "get", "blobs", "b"); code != 0 || stdout != blob+"\n" {
		t.Errorf("opstate get blob = %d, %q; want 0, %q", code, stdout, blob+"\n")
	}
	if code, stdout, stderr := cli("", "frob"); code != 2 || stdout != "" || stderr == "" {
		t.Errorf("opstate frob = %d, %q, %q; want 2, \"\", a message", code, stdout, stderr)
	}
	if code, stdout, _ := cli("", "-h"); code != 0 || !strings.HasPrefix(stdout, "usage:") {
		t.Errorf("opstate -h = %d, %q; want 0, usage", code, stdout)
	}

	// An operator flips a toggle with the command while an agent's Store
	// has it cached: docs/guarantees.md cites this test for the Store
	// serving the new value within its SyncInterval. The agent opens with
	// the default options, so the bound is the documented default
	// SyncInterval, and a change to DefaultSyncInterval is caught.
	// Staleness is measured from the moment the opstate set process has
	// exited successfully (cmd.Run returns after the exit) to the first Get
	// that returns the new value.
	agent, err := opstate.Open(filepath.Join(work, "opstate.db"), opstate.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if v, _ := agent.Get("flags", "dark_mode"); v != "on" {
		t.Fatalf("agent Get = %q; want on", v)
	}
	code, _, stderr := cli("", "set", "flags", "dark_mode", "off")
	exited := time.Now()
	if code != 0 {
		t.Fatalf("opstate set = %d (%s); want 0", code, stderr)
	}
	bound := documentedSyncInterval + syncSlack
	for {
		v, err := agent.Get("flags", "dark_mode")
		stale := time.Since(exited)
		if err != nil {
			t.Fatal(err)
		}
		if v == "off" {
			t.Logf("toggle flipped by the opstate command seen by a running Store %v after the command exited", stale)
			if stale > bound {
				t.Errorf("a running Store served the new value %v after opstate set exited; want within SyncInterval %v + slack %v",
					stale, documentedSyncInterval, syncSlack)
			}
			break
		}
		if stale > bound {
			t.Fatalf("a running Store still serves %q %v after opstate set exited; want the new value within SyncInterval %v + slack %v",
				v, stale, documentedSyncInterval, syncSlack)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPostgresRefused checks that this build, which speaks SQLite only,
// refuses a PostgreSQL URL given in -db or in OPSTATE_DB, for every verb:
// exit 1, nothing on standard output, a message that says so and names
// the command that speaks PostgreSQL, and never the URL's password; and
// that it changes nothing, neither making a file nor falling back on
// ./opstate.db.
func TestPostgresRefused(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	runOK := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("run(%q) = %d, stderr %q; want 0, \"\"", args, code, stderr.String())
		}
		return stdout.String()
	}
	runOK("set", "flags", "k", "old") // ./opstate.db, which no refused run may change
	const password = "s3cret"
	verbs := [][]string{
		{"get", "flags", "k"},
		{"set", "flags", "k", "new"},
		{"set", "-ttl", "1h", "flags", "k", "-"},
		{"del", "flags", "k"},
		{"drop", "flags"},
		{"list", "flags"},
		{"list", "-json", "flags"},
		{"watch", "flags"},
		{"ns"},
		{"sweep"},
		{"backup", "copy.db"},
	}
	for _, url := range []string{
		"postgres://app:" + password + "@127.0.0.1:5432/state?sslmode=disable",
		"postgresql://app@db1/state?password=" + password,
	} {
		for _, viaEnv := range []bool{false, true} {
			for _, verb := range verbs {
				args := append([]string{"-db", url}, verb...)
				env := ""
				if viaEnv {
					args, env = verb, url
				}
				t.Setenv(cli.DBEnv, env)
				// watch of the database of a URL not refused would never
				// end: the run is bounded.
				var stdout, stderr bytes.Buffer
				done := make(chan int, 1)
				go func() { done <- run(args, strings.NewReader("new"), &stdout, &stderr) }()
				var code int
				select {
				case code = <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("run(%q) with %s=%q did not return within 10s", args, cli.DBEnv, env)
				}
				msg := stderr.String()
				if code != 1 || stdout.Len() != 0 || !strings.Contains(msg, "SQLite only") ||
					!strings.Contains(msg, "github.com/d8da9184/opstate/pgstate") || !strings.Contains(msg, "go install ./cmd/opstate") {
					t.Errorf("run(%q) with %s=%q = %d, stdout %q, stderr %q; want 1, \"\", a message saying SQLite only and naming the pgstate command",
						args, cli.DBEnv, env, code, stdout.String(), msg)
				}
				if strings.Contains(msg, password) {
					t.Errorf("run(%q) with %s=%q printed the password: %q", args, cli.DBEnv, env, msg)
				}
			}
		}
	}
	t.Setenv(cli.DBEnv, "")
	if got := runOK("get", "flags", "k"); got != "old\n" {
		t.Errorf("get from ./opstate.db after the refused runs printed %q; want %q", got, "old\n")
	}
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "opstate.db" {
			t.Errorf("a refused run left %s in the working directory", e.Name())
		}
	}
}
