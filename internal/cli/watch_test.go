package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cli/clitest"
	"github.com/d8da9184/opstate/internal/persist"
)

// startWatch starts opstate -db db watch args in a child process, and
// kills it at the end of the test if it is still running.
func startWatch(t *testing.T, db string, args ...string) *clitest.Process {
	t.Helper()
	return clitest.Start(t, clitest.Command(append([]string{"-db", db, "watch"}, args...)...))
}

// TestWatch runs opstate watch, in text and in -json form, while a Store
// and other runs of the command change the namespace, and checks that it
// prints one line per change, at once (its standard output is a pipe),
// nothing for another namespace, and exits 0 with nothing on standard error
// on SIGINT and on SIGTERM. Each change waits for its line before the next
// is made, since a watcher reports what a key holds when it notices a
// change by another connection.
func TestWatch(t *testing.T) {
	type step struct {
		do       func(t *testing.T, s *opstate.Store, db string)
		text     string
		jsonLine string
	}
	set := func(ns, k, v string) func(*testing.T, *opstate.Store, string) {
		return func(t *testing.T, s *opstate.Store, _ string) {
			if err := s.Set(ns, k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	command := func(args ...string) func(*testing.T, *opstate.Store, string) {
		return func(t *testing.T, _ *opstate.Store, db string) {
			args := append([]string{"-db", db}, args...)
			if code, _, stderr := clitest.Run(t, clitest.Command(args...)); code != exitOK {
				t.Fatalf("run %q = %d (%s); want 0", args, code, stderr)
			}
		}
	}
	steps := []step{
		{set("other", "dark_mode", "off"), "", ""}, // another namespace: no line
		{set("flags", "dark_mode", "on"),
			"set\tdark_mode\ton", `{"namespace":"flags","key":"dark_mode","op":"set","value":"on"}`},
		{command("set", "flags", "beta", "two <words> & more"),
			"set\tbeta\ttwo <words> & more", `{"namespace":"flags","key":"beta","op":"set","value":"two <words> & more"}`},
		{set("flags", "empty", ""),
			"set\tempty\t", `{"namespace":"flags","key":"empty","op":"set","value":""}`},
		{set("flags", "motd", "line1\nline2\n"),
			`set	motd	"line1\nline2\n"`, `{"namespace":"flags","key":"motd","op":"set","value":"line1\nline2\n"}`},
		{func(t *testing.T, s *opstate.Store, _ string) {
			if err := s.Delete("flags", "dark_mode"); err != nil {
				t.Fatal(err)
			}
		}, "delete\tdark_mode", `{"namespace":"flags","key":"dark_mode","op":"delete"}`},
		{command("del", "flags", "beta"),
			"delete\tbeta", `{"namespace":"flags","key":"beta","op":"delete"}`},
		// A lease written by a clock an hour slow has expired when the
		// watcher reads it.
		{func(t *testing.T, _ *opstate.Store, db string) {
			s := mustOpen(t, db, shifted(-time.Hour))
			if err := s.SetWithTTL("flags", "lease", "alice", time.Minute); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, "expire\tlease", `{"namespace":"flags","key":"lease","op":"expire"}`},
		// Another connection's sweep deletes the expired row: the change
		// log records that it had expired, and the watcher says so.
		{func(t *testing.T, s *opstate.Store, _ string) {
			if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
				t.Fatalf("DeleteExpired = %d, %v; want 1, nil", n, err)
			}
		}, "expire\tlease", `{"namespace":"flags","key":"lease","op":"expire"}`},
		// Dropping more keys than the change log lists one by one.
		{func(t *testing.T, s *opstate.Store, _ string) {
			if err := s.DeleteNamespace("flags"); err != nil {
				t.Fatal(err)
			}
		}, "reset", `{"namespace":"flags","op":"reset"}`},
	}
	for _, tt := range []struct {
		name string
		json bool
		sig  syscall.Signal
	}{
		{"text/SIGINT", false, syscall.SIGINT},
		{"text/SIGTERM", false, syscall.SIGTERM},
		{"json/SIGINT", true, syscall.SIGINT},
		{"json/SIGTERM", true, syscall.SIGTERM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := dbPath(t)
			s := mustOpen(t, db, nil)
			for i := range persist.SpaceThreshold + 1 {
				if err := s.Set("flags", fmt.Sprintf("bulk%03d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			var args []string
			if tt.json {
				args = append(args, "-json")
			}
			p := startWatch(t, db, append(args, "flags")...)
			p.Ready(t, s, "flags", tt.json)
			for _, st := range steps {
				st.do(t, s, db)
				p.ExpectLine(t, tt.json, st.text, st.jsonLine)
			}
			p.Stop(t, tt.sig)
		})
	}
}

// TestWatchValues checks the lines of changes whose key or value the text
// output quotes: a newline in a value must not break the rule of one line
// per change, and a string that is not valid UTF-8 is quoted by the text
// output, while watch -json refuses it (as list -json does) instead of
// printing lossy JSON: it exits 1 naming the key, having printed nothing
// for that change.
func TestWatchValues(t *testing.T) {
	for _, tt := range []struct {
		name, key, value string
		text             string
		jsonLine         string // "" when -json must refuse the change
		jsonErr          string // in the message of that refusal
	}{
		{"newline in value", "motd", "a\nb\r\n", `set	motd	"a\nb\r\n"`,
			`{"namespace":"ns","key":"motd","op":"set","value":"a\nb\r\n"}`, ""},
		{"newline in key", "two\nlines", "v", `set	"two\nlines"	v`,
			`{"namespace":"ns","key":"two\nlines","op":"set","value":"v"}`, ""},
		{"value not UTF-8", "blob", "x\xff\x00", `set	blob	"x\xff\x00"`,
			"", "the value of key " + strconv.Quote("blob")},
		{"key not UTF-8", "k\xfe", "v", `set	"k\xfe"	v`,
			"", "key " + strconv.Quote("k\xfe")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := dbPath(t)
			s := mustOpen(t, db, nil)

			p := startWatch(t, db, "ns")
			p.Ready(t, s, "ns", false)
			mustSetKey(t, s, "ns", tt.key, tt.value)
			p.Expect(t, tt.text)
			p.Stop(t, os.Interrupt)

			p = startWatch(t, db, "-json", "ns")
			p.Ready(t, s, "ns", true)
			mustSetKey(t, s, "ns", tt.key, tt.value)
			if tt.jsonLine != "" {
				p.Expect(t, tt.jsonLine)
				p.Stop(t, os.Interrupt)
				return
			}
			code, stderr := p.Exit(t)
			if code != exitFail || !strings.Contains(stderr, tt.jsonErr) || !strings.Contains(stderr, "watch without -json") {
				t.Errorf("%q at a change to %q = %q: exit %d, stderr %q; want 1 and a message naming %s and the text output",
					p.Args, tt.key, tt.value, code, stderr, tt.jsonErr)
			}
		})
	}
}

func mustSetKey(t *testing.T, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q, %q) error: %v", ns, key, value, err)
	}
}

// TestWatchBrokenPipe checks that watch whose standard output is a pipe
// nobody reads any more ends at the next change with exit 1 and a message,
// having closed the database, rather than being killed by SIGPIPE.
func TestWatchBrokenPipe(t *testing.T) {
	db := dbPath(t)
	s := mustOpen(t, db, nil)
	p := startWatch(t, db, "ns")
	p.Ready(t, s, "ns", false)
	p.CloseOutput()
	mustSetKey(t, s, "ns", "k", "v")
	if code, stderr := p.Exit(t); code != exitFail || !strings.Contains(stderr, "broken pipe") {
		t.Errorf("%q writing to a closed pipe: exit %d, stderr %q; want 1 and a message saying broken pipe", p.Args, code, stderr)
	}
}

// TestWatchMissingDatabase checks that watch, like every verb but set,
// fails on a path that holds nothing, naming it, and creates nothing. It
// runs the command as a process, which a watch that opened the path
// anyway would not end by itself.
func TestWatchMissingDatabase(t *testing.T) {
	for _, args := range [][]string{{"ns"}, {"-json", "ns"}} {
		dir := t.TempDir()
		db := filepath.Join(dir, "typo.db")
		p := startWatch(t, db, args...)
		if code, stderr := p.Exit(t); code != exitFail || !strings.Contains(stderr, db) {
			t.Errorf("%q = %d, stderr %q; want 1, a message naming %s", p.Args, code, stderr, db)
		}
		assertNoFiles(t, dir, p.Args)
	}
}

// TestWatchUsage checks watch's bad usage: exit 2, nothing created; a
// namespace that is not valid UTF-8 cannot appear in -json output.
func TestWatchUsage(t *testing.T) {
	for _, verb := range [][]string{
		{"watch"},
		{"watch", "a", "b"},
		{"watch", ""},
		{"watch", "-json"},
		{"watch", "-json", ""},
		{"watch", "-ttl", "1h", "ns"},
		{"watch", "-json", "bad\xffns"},
	} {
		dir := t.TempDir()
		args := append([]string{"-db", filepath.Join(dir, "test.db")}, verb...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitUsage || stdout != "" || stderr == "" {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, \"\", a message", args, code, stdout, stderr, exitUsage)
		}
		assertNoFiles(t, dir, args)
	}
}

// syncWriter is a bytes.Buffer safe for one writer and one reader.
type syncWriter struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestWatchStoreClosed checks that watch fails, rather than exiting 0 as
// on a signal, when the change feed ends because the Store closed.
func TestWatchStoreClosed(t *testing.T) {
	s := mustOpen(t, dbPath(t), nil)
	var out syncWriter
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := watch(context.Background(), s, &invocation{args: []string{"ns"}}, &out)
		done <- result{code, err}
	}()
	deadline := time.Now().Add(clitest.Wait)
	for out.String() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed nothing within %v", clitest.Wait)
		}
		mustSetKey(t, s, "ns", "marker", "v")
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != exitFail || r.err == nil || !strings.Contains(r.err.Error(), "closed") {
			t.Errorf("watch after Close = %d, %v; want %d and an error saying the store closed", r.code, r.err, exitFail)
		}
	case <-time.After(clitest.Wait):
		t.Fatalf("watch did not return within %v of Close", clitest.Wait)
	}
}
