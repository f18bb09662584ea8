package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Cluster is a PostgreSQL server of one test's own, made with initdb in
// a temporary directory, which the test may stop, start and restart
// without disturbing other tests. It listens on 127.0.0.1 and asks for a
// password (scram-sha-256).
type Cluster struct {
	// DSN connects to the cluster's postgres database as its superuser.
	DSN string
	// User and Password are the superuser's.
	User, Password string
	// Port is the TCP port the cluster listens on.
	Port int

	t   testing.TB
	bin string // the directory of initdb and pg_ctl
	dir string // holds data/, the log and the socket
}

// NewCluster initializes and starts a cluster, stopped and removed at
// cleanup. It skips the test when PostgreSQL's server binaries are not
// installed, unless Required. Run as root, it runs them as the postgres
// user, which initdb requires.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := serverBin()
	if bin == "" {
		if Required() {
			t.Fatal("no PostgreSQL server binaries (initdb, pg_ctl) (OPSTATE_REQUIRE_PG=1 or CI=true)")
		}
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl): install the postgresql package")
	}
	dir, err := os.MkdirTemp("", "opstate-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{User: "opstate", Password: "cluster-secret-" + strconv.Itoa(os.Getpid()), t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		c.ctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		// The postgres user must reach and own the directory.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user for initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(c.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run("initdb", "-D", c.data(), "-U", c.User, "--pwfile", pw, "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync")
	os.Remove(pw)
	c.Port = freePort(t)
	c.DSN = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", c.User, c.Password, c.Port)
	c.Start()
	return c
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.Port, c.dir)
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "start")
}

// Stop stops the cluster with a fast shutdown: sessions are terminated,
// and transactions in progress rolled back.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
}

// Restart is pg_ctl restart -m fast: a fast shutdown, then a start.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "restart")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// run runs one of the server's programs, as postgres when root, failing
// the test with its output if it fails. The output goes to a file, not a
// pipe: the server pg_ctl starts inherits it, and would hold a pipe open.
func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	out, err := os.CreateTemp(c.dir, "out-")
	if err != nil {
		c.t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := c.command(prog, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		text, _ := os.ReadFile(out.Name())
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", prog, args, err, text, log)
	}
}

// ctl runs pg_ctl, ignoring its failure (cleanup).
func (c *Cluster) ctl(args ...string) {
	c.command("pg_ctl", append([]string{"-D", c.data()}, args...)...).Run()
}

func (c *Cluster) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, prog)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// serverBin returns the directory of initdb and pg_ctl: Debian's newest
// /usr/lib/postgresql/N/bin, or the one of initdb on PATH; "" if none.
func serverBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// freePort returns a TCP port of 127.0.0.1 that nothing listened on a
// moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
