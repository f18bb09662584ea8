package clients

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// details is an evaluation's details as an OpenFeature SDK returns them,
// with errorName, the name of the error the provider raised (the server
// SDK's script alone reports it).
type details struct {
	Value        any            `json:"value"`
	Reason       string         `json:"reason"`
	ErrorCode    string         `json:"errorCode,omitempty"`
	ErrorName    string         `json:"errorName,omitempty"`
	FlagMetadata map[string]any `json:"flagMetadata,omitempty"`
}

// line is one line a script writes on its standard output; Kind says
// which of the fields it has (see the scripts' comments).
type line struct {
	Kind string `json:"kind"`

	// ready
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Cause   string `json:"cause"`
	Message string `json:"message"`

	// eval
	Details details `json:"details"`

	// changed
	Flags []string `json:"flags"`

	// fetch and preflight
	Path           string   `json:"path"`
	Status         int      `json:"status"`
	AllowOrigin    string   `json:"allowOrigin"`
	Method         string   `json:"method"`      // fetch
	IfNoneMatch    string   `json:"ifNoneMatch"` // fetch
	ETag           string   `json:"etag"`        // fetch: as the page can read it
	Allowed        bool     `json:"allowed"`     // fetch: the page may read the answer
	RequestMethod  string   `json:"requestMethod"`
	RequestHeaders string   `json:"requestHeaders"` // preflight
	Problems       []string `json:"problems"`       // preflight: why it refuses, if it does

	raw string // the line as written
}

// String returns the line as the script wrote it.
func (l line) String() string { return l.raw }

// script is a running script of js/.
type script struct {
	name   string
	stdin  io.WriteCloser
	stderr *lockedBuffer

	mu    sync.Mutex // guards lines and ended
	lines []line     // every line written so far
	ended bool       // standard output closed
	more  chan struct{}
}

// node starts js/name with node, the environment variables env added,
// and reads its lines. At the end of the test it closes the script's
// standard input and wants it to exit 0.
func (e *clientEnv) node(t *testing.T, name string, env ...string) *script {
	t.Helper()
	cmd := exec.Command(e.nodeBin, filepath.Join(e.js, name))
	cmd.Dir = e.js
	cmd.Env = append(os.Environ(), env...)
	s := &script{name: name, stderr: &lockedBuffer{}, more: make(chan struct{}, 1)}
	cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = line{Kind: "unparsed"}
			}
			l.raw = sc.Text()
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
			s.wake()
		}
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		s.wake()
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		s.stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: %v; want exit status 0\n%s", name, err, s.stderr)
			}
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			t.Errorf("%s still running %v after the end of its input\n%s", name, waitLimit, s.stderr)
		}
	})
	return s
}

// wake tells a waiter that lines or ended changed.
func (s *script) wake() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// snapshot returns the lines written so far.
func (s *script) snapshot() []line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]line(nil), s.lines...)
}

// count returns the number of lines written so far.
func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// await waits for a line at index from or later that match accepts and
// returns its index and the line, failing the test if the script ends or
// waitLimit passes first; what describes the line awaited.
func (s *script) await(t *testing.T, what string, from int, match func(line) bool) (int, line) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				l := s.lines[i]
				s.mu.Unlock()
				return i, l
			}
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			t.Fatalf("%s ended before %s\n%s", s.name, what, s.stderr)
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("%s: no %s within %v\n%s", s.name, what, waitLimit, s.stderr)
		}
	}
}

// kind returns a match for the lines of kind k.
func kind(k string) func(line) bool {
	return func(l line) bool { return l.Kind == k }
}

// ready waits for the script's ready line and returns it.
func (s *script) ready(t *testing.T) line {
	t.Helper()
	_, l := s.await(t, "ready line", 0, kind("ready"))
	return l
}

// eval asks the script to evaluate flag key as typ (boolean, string,
// number, object) with default def, and returns the details.
func (s *script) eval(t *testing.T, typ, key string, def any) details {
	t.Helper()
	from := s.count()
	req, err := json.Marshal(map[string]any{"type": typ, "key": key, "default": def})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(s.stdin, "%s\n", req); err != nil {
		t.Fatalf("%s: writing %s: %v\n%s", s.name, req, err, s.stderr)
	}
	_, l := s.await(t, "evaluation of "+string(req), from, kind("eval"))
	return l.Details
}

// evalCase is an evaluation and the details it must have.
type evalCase struct {
	typ, key string
	def      any
	want     details
}

// check runs each evaluation of cases with s, and compares its details
// with the case's: the value, reason and error code; the error's name
// and the flag metadata when the case gives them.
func (s *script) check(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		got := s.eval(t, c.typ, c.key, c.def)
		w := c.want
		if !reflect.DeepEqual(got.Value, w.Value) || got.Reason != w.Reason || got.ErrorCode != w.ErrorCode ||
			(w.ErrorName != "" && got.ErrorName != w.ErrorName) ||
			(w.FlagMetadata != nil && !reflect.DeepEqual(got.FlagMetadata, w.FlagMetadata)) {
			t.Errorf("%s: %s %s (default %v) = %+v; want %+v", s.name, c.typ, c.key, c.def, got, w)
		}
	}
}
