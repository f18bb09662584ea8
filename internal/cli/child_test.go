package cli

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// commandEnv, set in the environment of this test binary run again as a
// child process, makes TestMain run the command on the child's arguments,
// as main does, instead of the tests: a test can then run the command as a
// process of its own (to signal it, or to watch it write to a pipe) built
// with the test's flags, -race included.
const commandEnv = "OPSTATE_TEST_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(commandEnv) != "" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, OpenSQLite))
	}
	// A test that runs the command without -db uses OPSTATE_DB if it is
	// set, and must not touch the database of the shell that runs the
	// tests; the tests of OPSTATE_DB set it themselves.
	os.Unsetenv(DBEnv)
	os.Exit(m.Run())
}

// commandProcess returns the command that runs opstate args in a child
// process. Under -race, the child does not wait the race detector's
// default second at exit (atexit_sleep_ms), which would add a second to
// every run.
func commandProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), commandEnv+"=1",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// runProcess runs opstate args in a child process and returns its exit
// status and output.
func runProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := commandProcess(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run %q: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
