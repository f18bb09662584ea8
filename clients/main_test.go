package clients

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// minNode is the oldest Node major version the tests take: the first with
// fetch, Request and Response as globals without a flag, and the version
// of Debian 12's nodejs package (18.20.4), with which they pass although
// the OpenFeature server SDK's package asks for Node 20 (npm ci warns).
const minNode = 18

// scripts are the files of js/ that the tests run, and that npm ci
// installs from: the lock file pins every package's version and hash.
var scripts = []string{"package.json", "package-lock.json", "server-sdk.mjs", "web.mjs", "page-fetch.mjs"}

// clientEnv is what every test shares, made once: the opstate command and
// the scripts with their installed packages.
type clientEnv struct {
	bin     string // the opstate command, built from this work tree
	nodeBin string // the node program
	js      string // the scripts, with node_modules
}

var (
	tmpRoot string // made by TestMain, removed after the tests

	envOnce    sync.Once
	envShared  *clientEnv // made by the first setup
	envErr     error
	nodeMajor  int // node's major version, read by the first setup
	nodeString string
)

func TestMain(m *testing.M) {
	// The command run without -db uses OPSTATE_DB if it is set: the tests
	// must not touch the database of the shell that runs them.
	os.Unsetenv("OPSTATE_DB")
	dir, err := os.MkdirTemp("", "opstate-clients-")
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
// the test with -short, and without node (at least minNode) or npm, which
// fails it instead when CI=true.
func setup(t *testing.T) *clientEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the opstate command and installs npm packages")
	}
	node := need(t, "node")
	npm := need(t, "npm")
	envOnce.Do(func() { envShared, envErr = makeEnv(node, npm) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	if nodeMajor < minNode {
		missing(t, fmt.Sprintf("node %s is older than %d, the oldest these tests take", nodeString, minNode))
	}
	return envShared
}

// need returns the path of program name, or calls missing.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("no %s: %v", name, err))
	}
	return p
}

// missing skips the test for want of what why names, or fails it when
// CI=true: CI must run these tests.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, and CI=true: the OpenFeature client tests cannot run (.ci/run installs nodejs and npm with apt-get as root)", why)
	}
	t.Skip(why)
}

// makeEnv reads node's version and, if it is minNode or later, builds
// the opstate command, copies the scripts into a directory of tmpRoot and
// installs their packages there with npm ci.
func makeEnv(node, npm string) (*clientEnv, error) {
	out, err := exec.Command(node, "-p", "process.versions.node").Output()
	if err != nil {
		return nil, fmt.Errorf("node -p process.versions.node: %v", err)
	}
	nodeString = strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(nodeString, ".")
	if nodeMajor, err = strconv.Atoi(major); err != nil {
		return nil, fmt.Errorf("node version %q: %v", nodeString, err)
	}
	if nodeMajor < minNode {
		return nil, nil // setup says why
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go tool, to build the opstate command: %v", err)
	}
	e := &clientEnv{bin: filepath.Join(tmpRoot, "opstate"), nodeBin: node, js: filepath.Join(tmpRoot, "js")}
	if out, err := exec.Command(goTool, "build", "-o", e.bin, "github.com/d8da9184/opstate/cmd/opstate").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build opstate: %v\n%s", err, out)
	}
	if err := os.Mkdir(e.js, 0o755); err != nil {
		return nil, err
	}
	for _, name := range scripts {
		b, err := os.ReadFile(filepath.Join("js", name))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(e.js, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = e.js
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("npm ci in %s (the npm registry must be reachable): %v\n%s", e.js, err, out)
	}
	return e, nil
}
