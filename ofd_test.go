//go:build unix

package opstate_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/d8da9184/opstate"
)

// Environment of the filereader child of TestFileReadKeepsWrites.
const (
	fileReadDBEnv    = "OPSTATE_FILEREAD_DB"    // the database path
	fileReadFirstEnv = "OPSTATE_FILEREAD_FIRST" // set: open another database through database/sql before the Store
)

// fileReadTail is how many keys the filereader sets after the other
// process has read the file: few enough that no checkpoint copies them
// into the database file before the kill.
const fileReadTail = 100

func init() { childRoles["filereader"] = fileReader }

// TestFileReadKeepsWrites attacks the promise that acknowledged writes
// survive code in the Store's own process that opens and closes the
// database file. A child process opens a Store and writes keys k0, k1, ...
// from a goroutine; meanwhile it reads the whole database file with
// os.ReadFile, as code that copies or checksums it would. Then another
// process (the sqlite3 shell, or database/sql in this one) reads the file
// and closes it, the child sets fileReadTail more keys, and it is killed
// with SIGKILL. Every key it acknowledged must be in the file.
//
// With POSIX locks, the read's close drops every lock the child holds on
// the file; the other process, finding the file unlocked as it closes,
// checkpoints and deletes the write-ahead log while the child goes on
// appending to the deleted one, and the writes after it are lost. opstate
// has SQLite use OFD locks, which a close of another descriptor does not
// drop: the "default" run must acknowledge every write and lose none. The
// two other runs keep POSIX locks, as the user can make it: turning OFD
// locks off in the environment (MODERNC_SQLITE_OFD_LOCK=0), or locking a
// database through modernc.org/sqlite before the first Store, after which
// the lock kind cannot change. There the log is deleted, and the Store
// must notice before it acknowledges a write to the deleted log: the first
// write after fails with ErrForeignSQLite, and none is lost.
func TestFileReadKeepsWrites(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		ofd  bool // OFD locks in the child; without them, its tail is refused
	}{
		{"default", nil, true},
		{"posix-by-env", []string{"MODERNC_SQLITE_OFD_LOCK=0"}, false},
		{"app-locked-first", []string{fileReadFirstEnv + "=1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ofd && runtime.GOOS != "linux" {
				t.Skip("OFD locks exist on Linux alone")
			}
			path := dbPath(t)
			cmd := childCommand(t, "filereader", append(tt.env, fileReadDBEnv+"="+path)...)
			// The child must decide its locks itself, whatever this
			// process's environment says.
			cmd.Env = append(withoutEnv(cmd.Env, "MODERNC_SQLITE_OFD_LOCK"), tt.env...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			lines := bufio.NewScanner(stdout)
			next := func(prefix string) string {
				t.Helper()
				if !lines.Scan() {
					cmd.Wait()
					killed = true
					t.Fatalf("child ended before %q: %v\nstderr: %s", prefix, lines.Err(), stderr.String())
				}
				rest, ok := strings.CutPrefix(lines.Text(), prefix)
				if !ok {
					t.Fatalf("child said %q; want %q...\nstderr: %s", lines.Text(), prefix, stderr.String())
				}
				return rest
			}
			ofd := next("read the file; OFD locks: ")

			// Another process reads the file and closes it.
			if sh, err := exec.LookPath("sqlite3"); err == nil {
				if out, err := exec.Command(sh, path, "SELECT count(*) FROM operational_state").CombinedOutput(); err != nil {
					t.Fatalf("sqlite3: %v: %s", err, out)
				}
			} else {
				countRows(t, path)
			}
			// Closing its last connection, the other process deletes the
			// log if it can lock the whole file: the child's locks must
			// hold it off where they survived the read.
			_, err = os.Stat(path + "-wal")
			if deleted := err != nil; deleted == tt.ofd {
				t.Errorf("OFD locks %v: the other process deleted the log = %v; want %v", tt.ofd, deleted, !tt.ofd)
			}
			if _, err := io.WriteString(stdin, "tail\n"); err != nil {
				t.Fatal(err)
			}
			var acked int
			var refused bool
			if _, err := fmt.Sscan(next("acknowledged "), &acked, &refused); err != nil {
				t.Fatal(err)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			killed = true

			s := mustOpen(t, path, opstate.Options{CacheBytes: -1})
			m, err := s.List("ns")
			if err != nil {
				t.Fatal(err)
			}
			lost := 0
			for i := range acked {
				if k := fmt.Sprint("k", i); m[k] != k {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("after SIGKILL, %d of %d acknowledged writes are missing; want none", lost, acked)
			}
			if ofd != fmt.Sprint(tt.ofd) {
				t.Errorf("child has OFD locks: %s; want %v", ofd, tt.ofd)
			}
			switch {
			case tt.ofd && refused:
				t.Errorf("with OFD locks, a write after the other process's read failed with ErrForeignSQLite; want all %d acknowledged", fileReadTail)
			case !tt.ofd && !refused:
				t.Errorf("with POSIX locks, all %d writes after the other process deleted the log were acknowledged; want ErrForeignSQLite", fileReadTail)
			}
			t.Logf("%d acknowledged, %d of them missing after SIGKILL; a write refused: %v", acked, lost, refused)
		})
	}
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// fileReader is the child of TestFileReadKeepsWrites: it opens a Store
// (after a database of its own through database/sql, when
// fileReadFirstEnv is set), sets k0, k1, ... from a goroutine, reads the
// database file with os.ReadFile meanwhile, stops the goroutine and says
// "read the file; OFD locks: <bool>". On "tail" from stdin it sets
// fileReadTail more keys, stopping at ErrForeignSQLite, says "acknowledged
// <n> <refused>" (the keys k0 to k<n-1>; whether a write failed with
// ErrForeignSQLite), and waits to be killed.
func fileReader() int {
	path := os.Getenv(fileReadDBEnv)
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	if os.Getenv(fileReadFirstEnv) != "" {
		app, err := sql.Open("sqlite", filepath.Join(filepath.Dir(path), "app.db"))
		if err != nil {
			return fail("%v", err)
		}
		if _, err := app.ExecContext(context.Background(), "CREATE TABLE app (v TEXT)"); err != nil {
			return fail("%v", err)
		}
		defer app.Close()
	}
	s, err := opstate.Open(path, opstate.Options{})
	if err != nil {
		return fail("Open: %v", err)
	}
	var (
		mu    sync.Mutex
		n     int   // keys k0 to k<n-1> are acknowledged
		werr  error // the writing goroutine's, read once it is done
		stop  = make(chan struct{})
		done  = make(chan struct{})
		first = make(chan struct{})
	)
	set := func() error {
		mu.Lock()
		k := fmt.Sprint("k", n)
		mu.Unlock()
		if err := s.Set("ns", k, k); err != nil {
			return err
		}
		mu.Lock()
		n++
		mu.Unlock()
		return nil
	}
	go func() {
		defer close(done)
		// Writes beside the read, not so many that the write-ahead log is
		// checkpointed before the kill.
		for i := range 200 {
			select {
			case <-stop:
				return
			default:
			}
			if werr = set(); werr != nil {
				return
			}
			if i == 10 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-done:
	}
	if _, err := os.ReadFile(path); err != nil {
		return fail("ReadFile: %v", err)
	}
	close(stop)
	<-done
	if werr != nil {
		return fail("Set: %v", werr)
	}
	fmt.Println("read the file; OFD locks:", sqlite.OFDLockingEnabled())
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "tail" {
		return fail("stdin: %q, %v", in.Text(), in.Err())
	}
	refused := false
	for range fileReadTail {
		err := set()
		if errors.Is(err, opstate.ErrForeignSQLite) {
			refused = true
			break
		}
		if err != nil {
			return fail("Set: %v", err)
		}
	}
	fmt.Println("acknowledged", n, refused)
	time.Sleep(time.Minute)
	return fail("not killed within a minute")
}
