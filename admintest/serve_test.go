package admintest

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait of these tests for something a process or
// the page must do (a line, an element, a value, an exit): far above what
// it takes, so that only one that never does it fails the test.
const waitLimit = 30 * time.Second

// lockedBuffer is a bytes.Buffer that a process writes while a test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// run runs the opstate command with args and returns its exit error and
// its standard output and error.
func (e *testEnv) run(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(e.bin, args...)
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.String(), se.String(), err
}

// opstate runs the command with args on the database db and returns its
// standard output; it fails the test unless the command exits 0.
func (e *testEnv) opstate(t *testing.T, db string, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(append([]string{"-db", db}, args...)...)
	if err != nil {
		t.Fatalf("opstate %q: %v\n%s", args, err, errOut)
	}
	return out
}

// token makes a token with opstate token NAME SCOPE and returns its
// secret and its token-file line.
func (e *testEnv) token(t *testing.T, name, scope string) (secret, line string) {
	t.Helper()
	out, errOut, err := e.run("token", name, scope)
	if err != nil {
		t.Fatalf("opstate token %s %s: %v\n%s", name, scope, err, errOut)
	}
	return strings.TrimSpace(out), strings.TrimSpace(errOut)
}

// server is a running opstate serve, with a write token and a read token
// unless it is open.
type server struct {
	url    string // http://ADDR, as serve printed it
	db     string // its database
	write  string // the secret of the write token, named "operator"; "" when open
	read   string // the secret of the read token, named "viewer"; "" when open
	stderr *lockedBuffer

	bin  string   // the opstate command
	args []string // serve's arguments but -addr
	proc *process // the process serving now
}

// A process is one opstate serve process of a server.
type process struct {
	once sync.Once
	stop func(t *testing.T) // sends SIGTERM and waits for exit status 0
}

// stop stops the server with SIGTERM and fails the test unless it exits
// with status 0 within waitLimit; the calls after the first do nothing.
func (s *server) stop(t *testing.T) {
	t.Helper()
	p := s.proc
	p.once.Do(func() { p.stop(t) })
}

// restart stops the server, as stop does, and starts it again on the
// same address, database and tokens.
func (s *server) restart(t *testing.T) {
	t.Helper()
	s.stop(t)
	old := s.url
	s.launch(t, strings.TrimPrefix(old, "http://"))
	if s.url != old {
		t.Fatalf("opstate serve restarted at %s; want %s", s.url, old)
	}
}

// serve makes a database and a token file (operator write, viewer read),
// starts opstate -db DB serve -addr 127.0.0.1:0 -tokens FILE with args,
// and returns once it listens. At the end of the test, unless stop did
// already, it sends SIGTERM and wants exit status 0.
func (e *testEnv) serve(t *testing.T, args ...string) *server {
	t.Helper()
	return e.start(t, true, args)
}

// serveOpen is serve without tokens: the server admits every request.
func (e *testEnv) serveOpen(t *testing.T, args ...string) *server {
	t.Helper()
	return e.start(t, false, args)
}

// start starts the server for serve and serveOpen.
func (e *testEnv) start(t *testing.T, tokens bool, args []string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{db: filepath.Join(dir, "state.db"), stderr: &lockedBuffer{}, bin: e.bin, args: args}
	if tokens {
		var wline, rline string
		s.write, wline = e.token(t, "operator", "write")
		s.read, rline = e.token(t, "viewer", "read")
		file := filepath.Join(dir, "tokens")
		if err := os.WriteFile(file, []byte(wline+"\n"+rline+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = append([]string{"-tokens", file}, args...)
	}
	s.launch(t, "127.0.0.1:0")
	return s
}

// launch starts a process of the server listening on addr and returns
// once it listens, its address in s.url. At the end of the test, unless
// stop did already, it stops it.
func (s *server) launch(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"-db", s.db, "serve", "-addr", addr}, s.args...)...)
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	p := &process{stop: func(t *testing.T) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("opstate serve after SIGTERM: %v; want exit status 0\n%s", err, s.stderr)
			}
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			t.Errorf("opstate serve still running %v after SIGTERM\n%s", waitLimit, s.stderr)
		}
	}}
	s.proc = p
	t.Cleanup(func() { p.once.Do(func() { p.stop(t) }) })
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- line
		io.Copy(io.Discard, r)
		exited <- cmd.Wait()
	}()
	select {
	case line := <-first:
		url, ok := strings.CutPrefix(strings.TrimSpace(line), "serving ")
		if !ok {
			t.Fatalf("opstate serve printed %q; want serving http://ADDR\n%s", line, s.stderr)
		}
		s.url = url
	case <-time.After(waitLimit):
		t.Fatalf("opstate serve printed nothing in %v\n%s", waitLimit, s.stderr)
	}
}

// request makes a request to the server with the header h and returns
// the answer's status and body.
func (s *server) request(t *testing.T, method, path, body string, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}
