package pgstate_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
)

// childEnv names the role of a test binary run as a child process; the
// child's Store opens the connection string in childDSN.
const (
	childEnv = "PGSTATE_TEST_CHILD"
	childDSN = "PGSTATE_TEST_DSN"
)

// TestMain runs the tests, then fails the run if a goroutine of a Store,
// of pgx or of its pool outlived every Store's Close; or, with childEnv
// set, plays a child process.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "store" {
		os.Exit(storeChild(os.Getenv(childDSN), os.Stdin, os.Stdout))
	}
	code := m.Run()
	if code == 0 {
		if leaked := leftGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived their Store:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leftGoroutines waits up to timeout for every goroutine running opstate's
// or pgx's code to end, and returns the stacks of those still running.
func leftGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n")[1:] { // [0] is this one
			if strings.Contains(g, "github.com/d8da9184/opstate") || strings.Contains(g, "github.com/jackc/") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storeChild serves requests, one per line, on a Store of its own:
//
//	set NS KEY VALUE        -> ok
//	get NS KEY              -> val VALUE
//	setifabsent NS KEY VAL  -> true | false
//	cas NS KEY OLD NEW      -> true | false
//	wait NS KEY VALUE       -> ok (once Get serves VALUE) | timeout (5s)
//
// and "err MESSAGE" for a failed call. Fields are separated by spaces, so
// values hold none.
func storeChild(dsn string, in io.Reader, out io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s, err := pgstate.Open(ctx, dsn, opstate.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(out, "err", err)
		return 1
	}
	defer s.Close()
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var reply string
		var ok bool
		var err error
		switch {
		case len(f) == 4 && f[0] == "set":
			err = s.Set(f[1], f[2], f[3])
			reply = "ok"
		case len(f) == 3 && f[0] == "get":
			var v string
			v, err = s.Get(f[1], f[2])
			reply = "val " + v
		case len(f) == 4 && f[0] == "setifabsent":
			ok, err = s.SetIfAbsent(f[1], f[2], f[3])
			reply = fmt.Sprint(ok)
		case len(f) == 5 && f[0] == "cas":
			ok, err = s.CompareAndSwap(f[1], f[2], f[3], f[4])
			reply = fmt.Sprint(ok)
		case len(f) == 4 && f[0] == "wait":
			reply = "timeout"
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				var v string
				if v, err = s.Get(f[1], f[2]); err != nil || v == f[3] {
					reply = "ok"
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
		default:
			err = fmt.Errorf("bad request %q", sc.Text())
		}
		if err != nil {
			reply = "err " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		fmt.Fprintln(out, reply)
	}
	return 0
}

// child is a storeChild process.
type child struct {
	t   testing.TB
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChild starts a storeChild on dsn, stopped at cleanup.
func startChild(t testing.TB, dsn string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=store", childDSN+"="+dsn)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, in: in, out: bufio.NewScanner(outp)}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	})
	if got := c.read(); got != "ready" {
		t.Fatalf("child: %s", got)
	}
	return c
}

func (c *child) read() string {
	c.t.Helper()
	if !c.out.Scan() {
		c.t.Fatalf("child exited: %v", c.out.Err())
	}
	return c.out.Text()
}

// do sends one request and returns the reply, failing the test on "err".
func (c *child) do(req ...string) string {
	c.t.Helper()
	c.send(req...)
	return c.reply()
}

// send sends one request; reply reads its reply.
func (c *child) send(req ...string) {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, strings.Join(req, " ")); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads the reply to the last request sent, failing the test on
// "err".
func (c *child) reply() string {
	c.t.Helper()
	r := c.read()
	if strings.HasPrefix(r, "err ") {
		c.t.Fatalf("child: %s", r)
	}
	return r
}
