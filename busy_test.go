//go:build linux

package opstate_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// lockChildEnv, set only in the environment of the child lockHolderSQL,
// is the path of the database whose write lock it holds.
const lockChildEnv = "OPSTATE_LOCK_CHILD"

// TestLockedByOtherProcess has a child process (lockHolderSQL) hold
// the database's write lock with BEGIN IMMEDIATE and an uncommitted update
// of "ns"/"k", and checks, while the lock is held, that
//   - reads are served by a cached and an uncached Store: a cached key, a
//     key read for the first time, a key cached as absent, List and
//     Namespaces, none of them seeing the uncommitted update;
//   - Set, Delete and DeleteNamespace fail with ErrBusy, after waiting
//     about BusyTimeout (at least half of it, and not for ever);
//   - the old values are still served after each failure;
//
// and after the child rolled back and exited, that the old values are
// still served and a Set succeeds and is seen by both Stores.
func TestLockedByOtherProcess(t *testing.T) {
	path := dbPath(t)
	setup := mustOpen(t, path, opstate.Options{})
	mustSet(t, setup, "ns", "k", "old")
	mustSet(t, setup, "ns", "cold", "c")
	if err := setup.Close(); err != nil {
		t.Fatal(err)
	}
	const busy = 100 * time.Millisecond
	// Nobody commits while the lock is held, so s needs no check for
	// other writers; emptying its cache could hide a failed write that was
	// cached.
	s := mustOpen(t, path, opstate.Options{BusyTimeout: busy, SyncInterval: -1})
	u := mustOpen(t, path, opstate.Options{BusyTimeout: busy, CacheBytes: -1})
	warm(t, s, "ns", "k", "absent") // "cold" stays uncached

	cmd := childCommand(t, "lockholder-sql", lockChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	released := false
	release := func() {
		if released {
			return
		}
		released = true
		stdin.Close() // the child rolls back and exits
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock holder: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(rest, "\n"), stderr.String())
		}
	}
	defer release()
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("lock holder exited before taking the lock\nstderr:\n%s", stderr.String())
			}
			if l == "locked" {
				break wait
			}
		case <-timeout:
			t.Fatalf("lock holder did not take the lock within 30s\nstderr:\n%s", stderr.String())
		}
	}

	reads := func(when string) {
		t.Helper()
		for name, st := range map[string]*opstate.Store{"cached": s, "uncached": u} {
			for _, c := range []struct {
				key, want string
				ok        bool
			}{{"k", "old", true}, {"cold", "c", true}, {"absent", "", false}} {
				if got, ok, err := st.Lookup("ns", c.key); err != nil || got != c.want || ok != c.ok {
					t.Errorf("%s: %s Lookup(ns, %s) = %q, %v, %v; want %q, %v, nil", when, name, c.key, got, ok, err, c.want, c.ok)
				}
			}
			if m, err := st.List("ns"); err != nil || !maps.Equal(m, map[string]string{"k": "old", "cold": "c"}) {
				t.Errorf("%s: %s List(ns) = %v, %v; want k=old, cold=c", when, name, m, err)
			}
			if nss, err := st.Namespaces(); err != nil || len(nss) != 1 || nss[0] != (opstate.Namespace{Name: "ns", Keys: 2}) {
				t.Errorf("%s: %s Namespaces() = %v, %v; want [{ns 2}]", when, name, nss, err)
			}
		}
	}
	reads("lock held")

	writes := []struct {
		name  string
		write func() error
	}{
		{"Set", func() error { return s.Set("ns", "k", "new") }},
		{"uncached Set", func() error { return u.Set("ns", "k", "new") }},
		{"Set of a new key", func() error { return s.Set("ns", "absent", "new") }},
		{"Delete", func() error { return s.Delete("ns", "cold") }},
		{"DeleteNamespace", func() error { return s.DeleteNamespace("ns") }},
	}
	for _, w := range writes {
		start := time.Now()
		err := w.write()
		d := time.Since(start)
		if !errors.Is(err, opstate.ErrBusy) {
			t.Errorf("%s under another process's write lock = %v; want ErrBusy", w.name, err)
		}
		if d < busy/2 || d > 10*time.Second {
			t.Errorf("%s failed after %v; want it to wait about BusyTimeout (%v)", w.name, d, busy)
		}
		t.Logf("%s failed after %v: %v", w.name, d, err)
		reads("lock held, after failed " + w.name)
	}

	// Opening a current file takes no write lock, so it works while
	// another process holds one.
	o, err := opstate.Open(path, opstate.Options{BusyTimeout: busy})
	if err != nil {
		t.Errorf("Open while another process holds the write lock = %v; want nil", err)
	} else if err := o.Close(); err != nil {
		t.Error(err)
	}

	release()
	reads("lock released")
	mustSet(t, s, "ns", "k", "new")
	wantGet(t, s, "ns", "k", "new", true)
	wantGet(t, u, "ns", "k", "new", true)
}

func init() { childRoles["lockholder-sql"] = lockHolderSQL }

// lockHolderSQL is the child of TestLockedByOtherProcess and of
// holdWriteLockInChild (close_test.go): it takes the write
// lock of the file named by lockChildEnv, updates "ns"/"k" without
// committing, prints "locked", and rolls back when its standard input is
// closed (or after a minute).
func lockHolderSQL() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+os.Getenv(lockChildEnv)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, "UPDATE operational_state SET value = 'uncommitted' WHERE namespace = 'ns' AND key = 'k'"); err != nil {
		return fail(err)
	}
	fmt.Fprintln(os.Stdout, "locked")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		return fail(errors.New("standard input still open after a minute"))
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return fail(err)
	}
	return 0
}
