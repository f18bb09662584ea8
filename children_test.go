package opstate_test

import (
	"fmt"
	"os"
	"os/exec"
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

// childCommand returns the command that runs this test binary as a child
// playing role, with env added to the environment.
func childCommand(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childRoleEnv+"="+role), env...)
	return cmd
}
