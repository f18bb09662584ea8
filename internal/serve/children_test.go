package serve_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// childRoleEnv, set in the environment of this test binary run again as
// a child process, names the role it plays, and childArgsEnv holds its
// arguments, separated by newlines; TestMain then runs that role instead
// of the tests and exits with its status.
const (
	childRoleEnv = "OPSTATE_SERVE_TEST_CHILD"
	childArgsEnv = "OPSTATE_SERVE_TEST_ARGS"
)

// childRoles maps a role to the function that plays it with its
// arguments, returning the exit status. Test files add their roles from
// init functions.
var childRoles = map[string]func(args []string) int{}

// runChildRole runs the role named in the environment, if any, and
// reports whether it did; TestMain calls it first.
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
	return f(strings.Split(os.Getenv(childArgsEnv), "\n")), true
}

// child is a running child process that takes commands on its standard
// input and answers on its standard output, a line each.
type child struct {
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *lockedBuffer
}

// startChild starts this test binary as a child playing role with args;
// when the test ends, its input is closed and it is waited for (killed
// after wait), and a failed exit fails the test.
func startChild(t testing.TB, role string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childArgsEnv+"="+strings.Join(args, "\n"))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{in: in, out: bufio.NewScanner(out), stderr: new(lockedBuffer)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		select {
		case err = <-exited:
		case <-time.After(wait):
			cmd.Process.Kill()
			err = fmt.Errorf("still running %v after its input was closed: killed (%v)", wait, <-exited)
		}
		if err != nil {
			t.Errorf("%s child: %v\n%s", role, err, c.stderr)
		}
	})
	return c
}

// ask sends the child a command line and returns its answer line.
func (c *child) ask(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatalf("child: %s: %v\n%s", cmd, err, c.stderr)
	}
	if !c.out.Scan() {
		t.Fatalf("child: %s: no answer (%v)\n%s", cmd, c.out.Err(), c.stderr)
	}
	return c.out.Text()
}

// lockedBuffer is a child's standard error, written by exec's copying
// goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
