package opstate_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// childRoleEnv, set in the environment of this test binary run again as a
// child process, names the role it plays; TestMain then runs that role
// instead of the tests and exits with its status.
const childRoleEnv = "OPSTATE_TEST_CHILD"

// childRoles maps a role to the function that plays it, returning the exit
// status. Test files add their roles from init functions.
var childRoles = map[string]func() int{}

// runChildRole runs the role named in the environment, if any, and reports
// whether it did; TestMain calls it first.
func runChildRole() (code int, ran bool) {
	role := os.Getenv(childRoleEnv)
	if role == "" {
		return 0, false
	}
	f, ok := childRoles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		return 2, true
	}
	return f(), true
}

// childChecks collects the failed checks of a child role, which has no
// testing.T: each is written to its standard error, and the role exits
// with status 1 if there was any.
type childChecks struct{ failed atomic.Bool }

// Errorf reports a failed check; it may be called from any goroutine.
func (c *childChecks) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	c.failed.Store(true)
}

// status is the role's exit status: 1 if a check failed, else 0.
func (c *childChecks) status() int {
	if c.failed.Load() {
		return 1
	}
	return 0
}

// childCommand returns the command that runs this test binary as a child
// playing role, with env added to the environment.
func childCommand(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childRoleEnv+"="+role), env...)
	return cmd
}

// pipedChild is a running child that takes requests on its standard input
// and answers on its standard output, a line each.
type pipedChild struct {
	in     io.Writer
	out    *bufio.Scanner
	stderr *strings.Builder // what it wrote on its standard error
}

// startPipedChild starts a child playing role, with env added to its
// environment; when the test ends, its input is closed and it is waited
// for, and a failed exit fails the test.
func startPipedChild(t testing.TB, role string, env ...string) *pipedChild {
	t.Helper()
	cmd := childCommand(t, role, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &pipedChild{in: in, out: bufio.NewScanner(out), stderr: new(strings.Builder)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s child: %v\n%s", role, err, c.stderr)
		}
	})
	return c
}
