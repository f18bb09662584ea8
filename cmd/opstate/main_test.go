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
)

// documentedSyncInterval is the default Options.SyncInterval as README and
// the opstate package document it.
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
	// has it cached: README's Guarantees cite this test for the Store
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
