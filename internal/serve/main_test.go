package serve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// TestMain runs the role of a child process (children_test.go) when it
// is one. Else it runs the tests, and fails the run if a goroutine of the
// server or of a Store is still running once every test has stopped its
// server and closed its Store: handlers, event streams, watchers, the
// answering of excess connections.
func TestMain(m *testing.M) {
	if code, ran := runChildRole(); ran {
		os.Exit(code)
	}
	code := m.Run()
	if code == 0 {
		if leaked := leftover(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived their server or Store:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leftover waits up to timeout for the goroutines running this module's
// code to end, and returns the stacks of those still running.
func leftover(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n")[1:] { // [0] is this goroutine
			if strings.Contains(g, "github.com/d8da9184/opstate") && !strings.Contains(g, "serve_test.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait bounds each wait for something a test expects to happen: the
// tests run with -race on a shared machine.
const wait = 10 * time.Second

// fixture is a Server of a Store of the test's own, served on a loopback
// port by Serve.
type fixture struct {
	store *opstate.Store
	srv   *serve.Server
	url   string // http://127.0.0.1:PORT
	addr  string
	stop  context.CancelFunc
	done  chan error // Serve's result
}

// start serves a new Store with opts; the test's end stops the server
// and closes the Store.
func start(t testing.TB, opts serve.Options) *fixture {
	t.Helper()
	s, err := opstate.Open(filepath.Join(t.TempDir(), "serve.db"), opstate.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := serveStore(t, s, opts)
	t.Cleanup(func() { s.Close() })
	return f
}

// serveStore serves s with opts until the test's end.
func serveStore(t testing.TB, s *opstate.Store, opts serve.Options) *fixture {
	t.Helper()
	srv, err := serve.New(s, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{store: s, srv: srv, url: "http://" + l.Addr().String(), addr: l.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { f.done <- srv.Serve(ctx, l) }()
	t.Cleanup(f.shutdown)
	return f
}

// shutdown ends Serve and waits for it to return.
func (f *fixture) shutdown() {
	f.stop()
	select {
	case <-f.done:
	case <-time.After(wait):
		panic("Serve did not return after its context ended")
	}
}

// request is one request of a test and the answer it wants.
type request struct {
	method, path string
	body         string
	header       map[string]string
}

// do sends req to f and returns the answer with its body read.
func (f *fixture) do(t *testing.T, req request) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, f.url+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.header {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.method, req.path, err)
	}
	return resp, string(b)
}

// want sends req and fails the test unless the answer has status code;
// it returns the answer.
func (f *fixture) want(t *testing.T, code int, req request) (*http.Response, string) {
	t.Helper()
	resp, body := f.do(t, req)
	if resp.StatusCode != code {
		t.Fatalf("%s %s = %d %q; want %d", req.method, req.path, resp.StatusCode, body, code)
	}
	return resp, body
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawRequest sends req, a whole HTTP/1.1 request as bytes, on a
// connection of its own and returns what the server answers before it
// closes the connection.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}
