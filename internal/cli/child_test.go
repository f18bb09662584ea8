package cli

import (
	"io"
	"os"
	"testing"

	"github.com/d8da9184/opstate/internal/cli/clitest"
)

func TestMain(m *testing.M) {
	// Run again by clitest.Command, this test binary is the command.
	clitest.RunChild(func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return Main(args, stdin, stdout, stderr, OpenSQLite)
	})
	// A test that runs the command without -db uses OPSTATE_DB if it is
	// set, and must not touch the database of the shell that runs the
	// tests; the tests of OPSTATE_DB set it themselves.
	os.Unsetenv(DBEnv)
	os.Exit(m.Run())
}
