// Package clitest runs the opstate command in child processes, for the
// tests of package cli and of the main packages built on it: a test can
// then signal the command, or watch it write to a pipe, while the command
// is built with the test's flags, -race included.
//
// The child is the test binary itself, run again with an environment
// variable set; its TestMain calls [RunChild] first, which runs the
// command instead of the tests.
package clitest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// commandEnv, set in the environment of a test binary run again as a
// child process, makes [RunChild] run the command on the child's
// arguments.
const commandEnv = "OPSTATE_TEST_COMMAND"

// Wait bounds each wait for a line or an exit of a child: changes by
// other connections reach a watch within its SyncInterval, but the tests
// run under -race on a shared machine.
const Wait = 10 * time.Second

// RunChild runs main, the command, on the arguments and standard streams
// of this process and exits with its status, if this test binary was
// started by [Command]; otherwise it returns at once. TestMain calls it
// first.
func RunChild(main func(args []string, stdin io.Reader, stdout, stderr io.Writer) int) {
	if os.Getenv(commandEnv) != "" {
		os.Exit(main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// Command returns the command that runs opstate args in a child process.
// Under -race, the child does not wait the race detector's default second
// at exit (atexit_sleep_ms), which would add a second to every run.
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), commandEnv+"=1",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// Run runs cmd, from [Command], to its end and returns its exit status
// and output.
func Run(t *testing.T, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run %q: %v", cmd.Args[1:], err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// Process is the command running in a child process, typically opstate
// watch, its standard output a pipe read line by line.
type Process struct {
	Args   []string // the command's arguments, for messages
	cmd    *exec.Cmd
	out    *os.File    // the read end of standard output
	lines  chan string // each line read, with its newline; closed at EOF
	done   chan struct{}
	stderr lockedBuffer // complete once done is closed
	code   int          // set before done is closed
}

// Start starts cmd, from [Command], with its standard output a pipe, and
// kills it at the end of the test if it is still running.
func Start(t *testing.T, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{
		Args:  cmd.Args[1:],
		cmd:   cmd,
		lines: make(chan string, 100),
		done:  make(chan struct{}),
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = r
	cmd.Stdout, cmd.Stderr = w, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", p.Args, err)
	}
	w.Close()
	go func() {
		defer close(p.lines)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				p.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			p.code = -2
			return
		}
		p.code = cmd.ProcessState.ExitCode() // -1 when killed by a signal
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		r.Close()
	})
	return p
}

// Next returns the next line the process prints, failing the test if
// none comes within [Wait].
func (p *Process) Next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			t.Fatalf("%q ended (exit %d, stderr %q) before printing the next line", p.Args, p.code, p.stderr.String())
		}
		return line
	case <-time.After(Wait):
		t.Fatalf("%q printed no line within %v", p.Args, Wait)
	}
	return ""
}

// Expect fails the test unless the next line the process prints is want
// and a newline.
func (p *Process) Expect(t *testing.T, want string) {
	t.Helper()
	if got := p.Next(t); got != want+"\n" {
		t.Errorf("%q printed %q; want %q", p.Args, got, want+"\n")
	}
}

// ExpectLine is [Process.Expect] of the line a change makes opstate watch
// print: text, or jsonLine when the process runs watch -json. It expects
// nothing when that is "", for a change watch does not print.
func (p *Process) ExpectLine(t *testing.T, json bool, text, jsonLine string) {
	t.Helper()
	want := text
	if json {
		want = jsonLine
	}
	if want != "" {
		p.Expect(t, want)
	}
}

// Ready returns once the process, opstate watch [-json] ns, reports the
// changes to ns: it sets the key "marker" of ns through s, again and
// again, until the process prints the change to the value last set, which
// is also the last line it prints about the marker. The command prints
// nothing before its first change, so there is no other way to know that
// its Watch has begun.
func (p *Process) Ready(t *testing.T, s *opstate.Store, ns string, json bool) {
	t.Helper()
	deadline := time.After(Wait)
	for i := 0; ; i++ {
		if err := s.Set(ns, "marker", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("set\tmarker\t%d\n", i)
		if json {
			want = fmt.Sprintf(`{"namespace":%q,"key":"marker","op":"set","value":"%d"}`+"\n", ns, i)
		}
		retry := time.After(300 * time.Millisecond)
	read:
		for {
			select {
			case line, ok := <-p.lines:
				if !ok {
					<-p.done
					t.Fatalf("%q ended (exit %d, stderr %q) before reporting a change", p.Args, p.code, p.stderr.String())
				}
				if line == want {
					return
				}
				if !strings.HasPrefix(line, "set\tmarker\t") && !strings.Contains(line, `"key":"marker"`) {
					t.Fatalf("%q printed %q while starting; want only changes to the marker", p.Args, line)
				}
			case <-retry:
				break read
			case <-deadline:
				t.Fatalf("%q printed no change to %q/marker within %v", p.Args, ns, Wait)
			}
		}
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %q: %v", sig, p.Args, err)
	}
}

// Stop sends sig to the process and fails the test unless it then exits 0,
// printing no other line and nothing on standard error, as opstate watch
// does on SIGINT and SIGTERM.
func (p *Process) Stop(t *testing.T, sig os.Signal) {
	t.Helper()
	p.Signal(t, sig)
	if code, stderr := p.Exit(t); code != 0 || stderr != "" {
		t.Errorf("%q after %v: exit %d, stderr %q; want 0, \"\"", p.Args, sig, code, stderr)
	}
}

// WaitStderr returns once the process has written want on its standard
// error, failing the test if it does not within [Wait].
func (p *Process) WaitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q wrote no %q on standard error within %v; stderr %q", p.Args, want, Wait, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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

// CloseOutput closes the read end of the process's standard output: its
// next write fails with a broken pipe.
func (p *Process) CloseOutput() error { return p.out.Close() }

// Exit waits for the process to end, fails the test if it prints another
// line first, and returns its exit status and standard error.
func (p *Process) Exit(t *testing.T) (code int, stderr string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(Wait):
		t.Fatalf("%q did not exit within %v", p.Args, Wait)
	}
	for line := range p.lines {
		t.Errorf("%q printed %q; want no more lines", p.Args, line)
	}
	return p.code, p.stderr.String()
}

// Serving returns the base URL, http://ADDR, of the process, opstate
// serve, from the line it prints once listening; it fails the test if
// the first line is another.
func (p *Process) Serving(t *testing.T) string {
	t.Helper()
	line := p.Next(t)
	addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "serving http://")
	if !ok {
		t.Fatalf("%q printed %q first; want serving http://ADDR", p.Args, line)
	}
	return "http://" + addr
}

// Kill kills the process (SIGKILL) and waits for it to end.
func (p *Process) Kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %q: %v", p.Args, err)
	}
	select {
	case <-p.done:
	case <-time.After(Wait):
		t.Fatalf("%q did not end within %v of SIGKILL", p.Args, Wait)
	}
}
