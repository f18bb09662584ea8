//go:build unix

package opstate_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// Environment of the lockholder child of TestSecondOpenKeepsLocks.
const (
	lockDBEnv     = "OPSTATE_LOCK_DB"     // the database path
	lockSecondEnv = "OPSTATE_LOCK_SECOND" // what the child opens beside its Store
)

// lockWrites is how many keys the lockholder sets after the second Open.
const lockWrites = 100

// secondOpens name what the lockholder opens beside its Store (see
// lockHolder); setupSecond, where it has an entry, prepares one before
// the child starts, given the database's path.
var (
	secondOpens = []string{"store", "hardlink", "shm", "wal"}
	setupSecond = map[string]func(t *testing.T, path string){}
)

func init() { childRoles["lockholder"] = lockHolder }

// TestSecondOpenKeepsLocks attacks the promise that acknowledged writes
// survive, from inside the writer's own process. A child process opens a
// Store A and sets one key; then, in the same process, it opens something
// else on the same file: a second Store on the same path (opened and
// closed), the same file through a second hard link (refused), the
// database's -shm or -wal file as if it were a database (refused), or,
// where this process may mount, the file mounted on another path
// (refused). Then
// another process — this one, through database/sql, and the sqlite3 shell
// when it is installed — opens the file, counts its rows and closes it, A
// sets lockWrites more keys, and the child is killed with SIGKILL.
//
// Closing any descriptor of a file drops every POSIX lock the process holds
// on it. If the second Open did that to A's locks, the other process,
// finding the file unlocked when it closes, checkpoints and deletes the
// write-ahead log while A goes on writing into the deleted one: its later
// writes are acknowledged and lost. The test checks that another process
// sees every acknowledged write before the kill, and that all of them are
// in the file after it. A lock lost on the -shm (the Store's hold on the
// WAL index) loses nothing in that sequence, so the child also compares
// the locks it holds on the file and on its -shm (heldLocks) before and
// after the second Open: every one must still be held.
func TestSecondOpenKeepsLocks(t *testing.T) {
	for _, second := range secondOpens {
		t.Run(second, func(t *testing.T) {
			path := dbPath(t)
			if setup := setupSecond[second]; setup != nil {
				setup(t, path)
			}
			cmd := childCommand(t, "lockholder", lockDBEnv+"="+path, lockSecondEnv+"="+second)
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
			expect := func(want string) {
				t.Helper()
				if !lines.Scan() {
					cmd.Wait() // the child has ended: let its stderr be copied
					killed = true
					t.Fatalf("child ended before %q: %v\nstderr: %s", want, lines.Err(), stderr.String())
				}
				if got := lines.Text(); got != want {
					t.Fatalf("child said %q; want %q\nstderr: %s", got, want, stderr.String())
				}
			}
			expect("opened")

			// Another process opens the file, reads and closes it.
			if n := countRows(t, path); n != 1 {
				t.Errorf("another process counts %d rows after the second open; want 1", n)
			}
			if sh, err := exec.LookPath("sqlite3"); err == nil {
				out, err := exec.Command(sh, path, "SELECT count(*) FROM operational_state").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "1" {
					t.Errorf("sqlite3 shell counted %q, %v; want 1", out, err)
				}
			} else {
				t.Logf("no sqlite3 shell on PATH; only database/sql played the other process")
			}

			if _, err := io.WriteString(stdin, "write\n"); err != nil {
				t.Fatal(err)
			}
			expect(fmt.Sprintf("acknowledged %d", lockWrites))
			if n := countRows(t, path); n != 1+lockWrites {
				t.Errorf("before the kill, another process counts %d rows; want %d", n, 1+lockWrites)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			killed = true

			s := mustOpen(t, path, opstate.Options{CacheBytes: -1})
			m, err := s.List("ns")
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 1+lockWrites {
				t.Errorf("after SIGKILL the file holds %d keys; want all %d acknowledged", len(m), 1+lockWrites)
			}
			for i := range 1 + lockWrites {
				if k := fmt.Sprint("k", i); m[k] != k {
					t.Errorf("after SIGKILL %s = %q; want %q", k, m[k], k)
					break
				}
			}
		})
	}
}

// countRows counts the rows of the file at path through a connection of its
// own, closed before it returns, as another program would.
func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM operational_state").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// keeps reports whether every lock of before, file by file and range by
// range (heldLocks' lines), is in after too: the second Open may leave a
// lock more (a read mark SQLite keeps for a moment), never one less.
func keeps(before, after map[string]string) bool {
	for file, ranges := range before {
		have := strings.Split(after[file], "\n")
		for _, r := range strings.Split(ranges, "\n") {
			if !slices.Contains(have, r) {
				return false
			}
		}
	}
	return true
}

// lockHolder is the child of TestSecondOpenKeepsLocks: it opens a Store,
// sets k0, opens what lockSecondEnv names on the same file, says "opened",
// and on "write" from stdin sets k1 to k<lockWrites>, says "acknowledged
// <n>", and waits to be killed.
func lockHolder() int {
	path := os.Getenv(lockDBEnv)
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	// No poller and no sweeper: their transactions take and drop locks of
	// their own (a WAL read mark), which would come and go between the two
	// samples below.
	s, err := opstate.Open(path, opstate.Options{SyncInterval: -1, SweepInterval: -1})
	if err != nil {
		return fail("Open: %v", err)
	}
	if err := s.Set("ns", "k0", "k0"); err != nil {
		return fail("Set: %v", err)
	}
	// The locks this process holds on the file and its -shm, where the
	// system lists them: the second Open must leave every one in place.
	// (A lost lock on the -shm does not show in the count below, which
	// only a lost lock on the database file makes fail.)
	before, err := heldLocks(path, path+"-shm")
	if err != nil {
		return fail("%v", err)
	}
	if before != nil && (before[path] == "" || before[path+"-shm"] == "") {
		return fail("locks of the Store before the second Open: %q; want some on the file and on its -shm", before)
	}
	switch second := os.Getenv(lockSecondEnv); second {
	case "store":
		s2, err := opstate.NewStore(path)
		if err != nil {
			return fail("second NewStore: %v", err)
		}
		if v, err := s2.Get("ns", "k0"); err != nil || v != "k0" {
			return fail("second Store: Get = %q, %v", v, err)
		}
		if err := s2.Close(); err != nil {
			return fail("second Close: %v", err)
		}
	case "hardlink":
		link := path + ".link"
		if err := os.Link(path, link); err != nil {
			return fail("%v", err)
		}
		s2, err := opstate.NewStore(link)
		if err == nil {
			s2.Close()
			return fail("NewStore of a second hard link succeeded; want ErrNotDatabase")
		}
		if !errors.Is(err, opstate.ErrNotDatabase) {
			return fail("NewStore of a second hard link = %v; want ErrNotDatabase", err)
		}
		if err := os.Remove(link); err != nil {
			return fail("%v", err)
		}
	case "mountpoint":
		s2, err := opstate.NewStore(path + ".mnt")
		if err == nil {
			s2.Close()
			return fail("NewStore of the file mounted on another path succeeded; want ErrNotDatabase")
		}
		if !errors.Is(err, opstate.ErrNotDatabase) {
			return fail("NewStore of the file mounted on another path = %v; want ErrNotDatabase", err)
		}
	case "shm", "wal":
		s2, err := opstate.NewStore(path + "-" + second)
		if err == nil {
			s2.Close()
			return fail("NewStore of the -%s file succeeded; want ErrNotDatabase", second)
		}
		if !errors.Is(err, opstate.ErrNotDatabase) {
			return fail("NewStore of the -%s file = %v; want ErrNotDatabase", second, err)
		}
	default:
		return fail("unknown %s %q", lockSecondEnv, second)
	}
	after, err := heldLocks(path, path+"-shm")
	if err != nil {
		return fail("%v", err)
	}
	if !keeps(before, after) {
		return fail("the process's locks: %q before the second Open, %q after; want them kept", before, after)
	}
	fmt.Println("opened")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "write" {
		return fail("stdin: %q, %v", in.Text(), in.Err())
	}
	for i := 1; i <= lockWrites; i++ {
		if err := s.Set("ns", fmt.Sprint("k", i), fmt.Sprint("k", i)); err != nil {
			return fail("Set: %v", err)
		}
	}
	fmt.Println("acknowledged", lockWrites)
	time.Sleep(time.Minute)
	return fail("not killed within a minute")
}

// heldLocks returns, for each of paths, the locks this process holds on its
// file ("READ 128-128", one per line), or nil where the system has no
// /proc/self/fdinfo. It reads what /proc/self/fdinfo lists for each of the
// process's descriptors of the file: the POSIX locks taken through that
// descriptor, and the OFD locks of its open file description (which
// opstate has SQLite use for the database file), whatever process
// /proc/locks would name for them. It never opens the files.
func heldLocks(paths ...string) (map[string]string, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	held := make(map[string]string)
	for _, p := range paths {
		want, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var locks []string
		for _, fd := range fds {
			fi, err := os.Stat("/proc/self/fd/" + fd.Name()) // follows the descriptor without opening the file
			if err != nil || !os.SameFile(fi, want) {
				continue
			}
			info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
			if err != nil {
				continue // closed meanwhile
			}
			for _, line := range strings.Split(string(info), "\n") {
				// "lock:\t1: POSIX  ADVISORY  READ 22679 fe:00:9982273 128 128"
				rest, ok := strings.CutPrefix(line, "lock:")
				f := strings.Fields(rest)
				if !ok || len(f) != 8 || f[1] != "POSIX" && f[1] != "OFDLCK" {
					continue
				}
				locks = append(locks, f[3]+" "+f[6]+"-"+f[7])
			}
		}
		// Distinct ranges only: what matters is whether a range is held
		// at all, whichever descriptor shows it.
		slices.Sort(locks)
		held[p] = strings.Join(slices.Compact(locks), "\n")
	}
	return held, nil
}
