package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// endless is a standard input that never ends, of bytes 'x'. It counts
// what was read; past stop bytes it fails, so that a reader that does
// not stop can neither hang a test nor fill memory.
type endless struct{ n, stop int64 }

func (r *endless) Read(p []byte) (int, error) {
	if r.n > r.stop {
		return 0, errors.New("endless: read on and on")
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestReadValue reads values up to, at and past a limit from the kinds of
// standard input there are: a value up to the limit is read whole, a
// longer one is refused naming the limit, having read limit+1 bytes at
// most, and a regular file longer than the limit is refused unread.
func TestReadValue(t *testing.T) {
	const limit = 10
	inputs := map[string]func(t *testing.T, s string) io.Reader{
		"reader": func(t *testing.T, s string) io.Reader { return strings.NewReader(s) },
		"file": func(t *testing.T, s string) io.Reader {
			path := filepath.Join(t.TempDir(), "value")
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		},
		"pipe": func(t *testing.T, s string) io.Reader {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				io.WriteString(w, s) // fails once r is closed
				w.Close()
			}()
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
	for name, input := range inputs {
		for _, n := range []int{0, 1, limit, limit + 1, 1000} {
			t.Run(fmt.Sprint(name, "/", n), func(t *testing.T) {
				in := strings.Repeat("v", n)
				r := input(t, in)
				got, err := readValue(r, limit)
				if n <= limit {
					if err != nil || got != in {
						t.Errorf("readValue(%d bytes, %d) = %.20q, %v; want them all, nil", n, limit, got, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("longer than %d bytes", limit)) {
					t.Errorf("readValue(%d bytes, %d) = %.20q, %v; want an error naming the limit", n, limit, got, err)
				}
				if f, ok := r.(*os.File); ok && name == "file" {
					if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
						t.Errorf("readValue read %d bytes of a file longer than the limit, %v; want none", pos, err)
					}
				}
			})
		}
	}
	t.Run("endless", func(t *testing.T) {
		r := &endless{stop: 1 << 20}
		got, err := readValue(r, limit)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("longer than %d bytes", limit)) {
			t.Errorf("readValue(endless, %d) = %.20q, %v; want an error naming the limit", limit, got, err)
		}
		if r.n > limit+1 {
			t.Errorf("readValue(endless, %d) read %d bytes; want %d at most", limit, r.n, limit+1)
		}
	})
}

// TestSetFromStdinTooLong runs set with a value on standard input that
// never ends. Past the limit it must fail, naming it, having read it and
// one byte more and created no database; a value of the limit is stored.
// The limit is lowered for the test (TestMaxValue checks the real one).
func TestSetFromStdinTooLong(t *testing.T) {
	const limit = 4096
	defer func(old int64) { maxValue = old }(maxValue)
	maxValue = limit
	db := dbPath(t)
	stdin := &endless{stop: 1 << 20}
	args := []string{"-db", db, "set", "ns", "k", "-"}
	var stdout, stderr strings.Builder
	code := Main(args, stdin, &stdout, &stderr, OpenSQLite)
	if want := fmt.Sprintf("longer than %d bytes", limit); code != exitFail || !strings.Contains(stderr.String(), want) {
		t.Errorf("run(%q) with endless input = %d, %q; want %d and a message saying %q", args, code, stderr.String(), exitFail, want)
	}
	if stdin.n > limit+1 {
		t.Errorf("run(%q) read %d bytes of standard input; want %d at most", args, stdin.n, limit+1)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused set left %s: %v; want no file", db, err)
	}

	value := strings.Repeat("v", limit)
	if code, _, stderr := runCLI(t, value, args...); code != exitOK {
		t.Fatalf("run(%q) with a value of %d bytes = %d, %q; want 0", args, limit, code, stderr)
	}
	if got := mustRun(t, db, "get", "ns", "k"); got != value+"\n" {
		t.Errorf("get printed %d bytes; want the %d stored and a newline", len(got), limit)
	}
}

// TestMaxValue checks that set reads at most SQLite's length limit, as a
// connection of modernc.org/sqlite reports it.
func TestMaxValue(t *testing.T) {
	pool, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "limit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c, err := pool.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	limit, err := sqlite.Limit(c, sqlite3.SQLITE_LIMIT_LENGTH, -1) // a negative value reads it
	if err != nil {
		t.Fatal(err)
	}
	if maxValue != int64(limit) {
		t.Errorf("set reads values up to %d bytes; want SQLite's limit, %d", maxValue, limit)
	}
}
