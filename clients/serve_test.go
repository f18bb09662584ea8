package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// waitLimit bounds every wait of these tests for something a process
// must do (a line, an event, an exit): far above what it takes, so that
// only a process that never does it fails the test.
const waitLimit = 60 * time.Second

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

// opstate runs the command with args on the database db and returns its
// standard output; it fails the test unless the command exits 0.
func (e *clientEnv) opstate(t *testing.T, db string, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"-db", db}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opstate %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// token makes a token with opstate token NAME SCOPE and returns its
// secret and its token-file line.
func (e *clientEnv) token(t *testing.T, name, scope string) (secret, line string) {
	t.Helper()
	cmd := exec.Command(e.bin, "token", name, scope)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opstate token %s %s: %v\n%s", name, scope, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), strings.TrimSpace(stderr.String())
}

// tokenFile writes lines to a new token file, mode 0600, and returns its
// path.
func tokenFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// server is a running opstate serve.
type server struct {
	url    string // http://ADDR, as serve printed it
	stderr *lockedBuffer
}

// serve starts opstate -db db serve -addr 127.0.0.1:0 with args, and
// returns once it listens. At the end of the test it sends SIGTERM and
// wants exit status 0.
func (e *clientEnv) serve(t *testing.T, db string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"-db", db, "serve", "-addr", "127.0.0.1:0"}, args...)...)
	s := &server{stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
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
	})
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
	return s
}

// request makes a request to the server with the token secret and
// returns the answer, its body read.
func (s *server) request(t *testing.T, method, path, secret, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	for k, v := range header {
		req.Header.Set(k, v)
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
	return resp, string(b)
}

// put sets key of namespace ns to value through the key-value API.
func (s *server) put(t *testing.T, secret, ns, key, value string) {
	t.Helper()
	path := "/v1/namespaces/" + ns + "/keys/" + key
	if resp, body := s.request(t, http.MethodPut, path, secret, value, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT %s = %d %s; want 204", path, resp.StatusCode, body)
	}
}

// bulk makes an OFREP bulk evaluation, with If-None-Match inm unless it
// is empty, and returns the status and the ETag of the answer.
func (s *server) bulk(t *testing.T, secret, inm string) (int, string) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if inm != "" {
		h["If-None-Match"] = inm
	}
	resp, _ := s.request(t, http.MethodPost, "/ofrep/v1/evaluate/flags", secret, `{"context":{"targetingKey":"user-1"}}`, h)
	return resp.StatusCode, resp.Header.Get("ETag")
}

// change is the data of an event of a namespace's event stream.
type change struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// changes is an open event stream of a namespace.
type changes struct {
	data chan string // each event's data, until the stream ends
}

// watch opens the event stream of namespace ns with the token secret and
// returns once the stream watches (its opening comment came): every
// change after that comes on it.
func (s *server) watch(t *testing.T, secret, ns string) *changes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/namespaces/"+ns+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /v1/namespaces/%s/events = %d; want 200", ns, resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		resp.Body.Close()
		t.Fatalf("event stream of %s began with %q, %v; want its opening comment", ns, line, err)
	}
	c := &changes{data: make(chan string, 64)}
	go func() {
		defer resp.Body.Close()
		defer close(c.data)
		for {
			line, err := r.ReadString('\n')
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				select {
				case c.data <- strings.TrimSpace(d):
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

// waitSet waits for a change of the stream that sets key to value,
// failing the test if the stream ends or waitLimit passes first.
func (c *changes) waitSet(t *testing.T, key, value string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case d, ok := <-c.data:
			if !ok {
				t.Fatalf("the event stream ended before setting %s to %s", key, value)
			}
			var ch change
			if err := json.Unmarshal([]byte(d), &ch); err != nil {
				t.Fatalf("event data %q: %v", d, err)
			}
			if ch.Op == "set" && ch.Key == key && ch.Value == value {
				return
			}
		case <-deadline:
			t.Fatalf("no event setting %s to %s within %v", key, value, waitLimit)
		}
	}
}
