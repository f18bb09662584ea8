package admintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// browsers are the names of the Chromium program the tests look for, in
// order: Debian's package installs chromium.
var browsers = []string{"chromium", "chromium-browser", "google-chrome"}

// testEnv is what every test shares, made once: the opstate command and
// the browser program.
type testEnv struct {
	bin     string // the opstate command, built from this work tree
	browser string // the Chromium program
}

var (
	tmpRoot string // made by TestMain, removed after the tests

	envOnce   sync.Once
	envShared *testEnv // made by the first setup
	envErr    error
)

func TestMain(m *testing.M) {
	// The command run without -db uses OPSTATE_DB if it is set: the tests
	// must not touch the database of the shell that runs them.
	os.Unsetenv("OPSTATE_DB")
	dir, err := os.MkdirTemp("", "opstate-admintest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// setup returns the shared environment, made by its first call: it skips
// the test with -short, and without Chromium, which fails it instead when
// CI=true.
func setup(t *testing.T) *testEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the opstate command and runs Chromium (-short)")
	}
	browser := ""
	for _, name := range browsers {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		missing(t, fmt.Sprintf("no Chromium (looked for %q)", browsers))
	}
	envOnce.Do(func() { envShared, envErr = makeEnv(browser) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envShared
}

// missing skips the test for want of what why names, or fails it when
// CI=true: CI must run these tests.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, and CI=true: the browser tests cannot run (.ci/run installs Debian's chromium with apt-get as root)", why)
	}
	t.Skip(why)
}

// makeEnv builds the opstate command into tmpRoot.
func makeEnv(browser string) (*testEnv, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go tool, to build the opstate command: %v", err)
	}
	e := &testEnv{bin: filepath.Join(tmpRoot, "opstate"), browser: browser}
	if out, err := exec.Command(goTool, "build", "-o", e.bin, "github.com/d8da9184/opstate/cmd/opstate").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build opstate: %v\n%s", err, out)
	}
	return e, nil
}
