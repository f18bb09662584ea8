package opstate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/d8da9184/opstate"
)

// sqliteShell returns the path of the sqlite3 shell, skipping the test
// when there is none, or failing it when CI=true: there it must run.
func sqliteShell(t *testing.T) string {
	t.Helper()
	sh, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no sqlite3 shell on PATH, and CI=true: %v", err)
		}
		t.Skipf("no sqlite3 shell on PATH: %v", err)
	}
	return sh
}

// shell runs the sqlite3 shell on the file at path, another process, with
// args (dot-commands and SQL) after a busy timeout, and fails the test if
// it fails.
func shell(t *testing.T, sh, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command(sh, append([]string{path, ".timeout 10000"}, args...)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Error") {
		t.Fatalf("sqlite3 %s %q: %v\n%s", path, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// insertRowsSQL inserts n rows of namespace "other" by plain SQL: each
// appends a row to the change log.
func insertRowsSQL(n int, tag string) string {
	return fmt.Sprintf(`WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM i WHERE n < %d)
		INSERT INTO operational_state (namespace, key, value, updated_at)
		SELECT 'other', '%s' || n, 'v', strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now') FROM i`, n, tag)
}

// waitValue reads ns/key from s until it returns want, for up to 2s, and
// reports what it read last otherwise.
func waitValue(t *testing.T, s *opstate.Store, ns, key, want string) {
	t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got, err = s.Get(ns, key); err == nil && got == want {
			return
		}
	}
	t.Errorf("2s after the file was rewound, Get(%q, %q) = %q, %v; want %q, what the file holds", ns, key, got, err, want)
}

// waitReset waits up to 2s for an OpReset of a namespace on events, and
// fails the test if none comes.
func waitReset(t *testing.T, events <-chan opstate.Event) {
	t.Helper()
	timeout := time.After(2 * time.Second)
	var seen []opstate.Event
	for {
		select {
		case ev := <-events:
			if ev.Op == opstate.OpReset {
				return
			}
			seen = append(seen, ev)
		case <-timeout:
			t.Errorf("no OpReset within 2s of the file being rewound; events: %v", seen)
			return
		}
	}
}

// TestRestoredBackup checks that a Store notices that its file was rewound
// to a backup by the sqlite3 shell's .restore (SQLite's backup API, run by
// another process into the open file), and that it then serves what the
// file holds, not what it held before, and sends its watchers an OpReset:
// even when the change log, restored with the file, has since grown past
// where the Store had read it, so that its positions are taken by other
// rows than those the Store read.
func TestRestoredBackup(t *testing.T) {
	sh := sqliteShell(t)
	for _, tc := range []struct {
		name string
		// watch keeps a watcher (and with it the poller awake) throughout;
		// dormant waits until the poller sleeps before the Sets, and
		// reads nothing until the end, with the default SyncInterval;
		// writeAfter has the Store write another key right after the
		// restore, before the others' inserts.
		watch, dormant, writeAfter bool
	}{
		{name: "idle", watch: true},
		{name: "write-after", watch: true, writeAfter: true},
		{name: "dormant", dormant: true},
		{name: "dormant-write-after", dormant: true, writeAfter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, backup := filepath.Join(dir, "state.db"), filepath.Join(dir, "backup.db")
			opts := opstate.Options{}
			if !tc.dormant {
				// Once at least in the 300ms the Store idles, so that
				// it has read the log past its own Sets; and seldom
				// enough that it does not look between the restore,
				// its write and the others' inserts, when the log is
				// shorter than it has read.
				opts.SyncInterval = 200 * time.Millisecond
			}
			s := mustOpen(t, path, opts)
			var events <-chan opstate.Event
			if tc.watch {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var err error
				if events, err = s.Watch(ctx, "ns"); err != nil {
					t.Fatal(err)
				}
			}
			mustSet(t, s, "ns", "x", "v0")
			if err := s.Backup(t.Context(), backup); err != nil {
				t.Fatal(err)
			}
			if tc.dormant {
				waitDormant(t, s)
			}
			for i := 1; i <= 5; i++ {
				mustSet(t, s, "ns", "x", fmt.Sprint("v", i))
			}
			if tc.watch {
				// Events of one key coalesce while the consumer is away:
				// the last is the Store's own v5.
				for ev := recv(t, events, 2*time.Second); ev.Value != "v5"; ev = recv(t, events, 2*time.Second) {
					if ev.Op != opstate.OpSet {
						t.Fatalf("event %+v; want the Store's own OpSets", ev)
					}
				}
			}
			time.Sleep(300 * time.Millisecond) // the Store idles
			if tc.writeAfter {
				shell(t, sh, path, ".restore "+backup)
				mustSet(t, s, "ns", "y", "after")
				shell(t, sh, path, insertRowsSQL(20, "k"))
			} else {
				shell(t, sh, path, ".restore "+backup, insertRowsSQL(20, "k"))
			}
			if got := shell(t, sh, path, `SELECT value FROM operational_state WHERE namespace = 'ns' AND key = 'x'`); got != "v0" {
				t.Fatalf("after the restore the file holds x = %q; want v0", got)
			}
			waitValue(t, s, "ns", "x", "v0")
			if tc.watch {
				waitReset(t, events)
			}
			if tc.writeAfter {
				waitValue(t, s, "ns", "y", "after")
			}
		})
	}
}

// restore copies the database at src into the open file at path, through
// SQLite's backup API on a connection of modernc.org/sqlite (the copy the
// Store uses) of its own, as an application rolls its file back to a
// snapshot.
func restore(t *testing.T, path, src string) {
	t.Helper()
	db := sqlDB(t, path)
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		r, err := dc.(interface {
			NewRestore(string) (*sqlite.Backup, error)
		}).NewRestore(src)
		if err != nil {
			return err
		}
		if _, err := r.Step(-1); err != nil {
			r.Finish()
			return err
		}
		return r.Finish()
	})
	if err != nil {
		t.Fatalf("restore %s from %s: %v", path, src, err)
	}
}

// TestSnapshotRollback checks a rollback to a snapshot taken by another
// connection (VACUUM INTO) and put back through SQLite's backup API, from
// this process: the snapshot was written to since it was taken, so that
// its change log, restored, already reaches past where the Store had read
// the file's. The Store serves what the file holds, and its watcher gets
// an OpReset.
func TestSnapshotRollback(t *testing.T) {
	dir := t.TempDir()
	path, snap := filepath.Join(dir, "state.db"), filepath.Join(dir, "snapshot.db")
	s := mustOpen(t, path, opstate.Options{})
	events, err := s.Watch(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "x", "v0")
	if _, err := sqlDB(t, path).Exec(`VACUUM INTO ?`, snap); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		mustSet(t, s, "ns", "x", fmt.Sprint("v", i))
	}
	for ev := recv(t, events, 2*time.Second); ev.Value != "v5"; ev = recv(t, events, 2*time.Second) {
		// the Store's own, coalesced
	}
	wantGet(t, s, "ns", "x", "v5", true)
	if _, err := sqlDB(t, snap).Exec(insertRowsSQL(20, "k")); err != nil {
		t.Fatal(err)
	}
	restore(t, path, snap)
	var got string
	if err := sqlDB(t, path).QueryRow(`SELECT value FROM operational_state WHERE namespace = 'ns' AND key = 'x'`).Scan(&got); err != nil || got != "v0" {
		t.Fatalf("after the rollback the file holds x = %q, %v; want v0", got, err)
	}
	waitValue(t, s, "ns", "x", "v0")
	waitReset(t, events)
}

// TestRestoreAfterPosition checks a restore of a snapshot taken after the
// last position of the change log the Store has read, so that the row at
// that position, and all before it, survive the restore: the Store had
// also read from the file a write of another connection made after the
// snapshot (a cache miss serves what SQLite holds, before the poller has
// read that write's row of the log), which the restore takes back. It
// serves what the file holds, once it has looked. (The poller looks twice
// a second, so that it does not look in between.)
func TestRestoreAfterPosition(t *testing.T) {
	dir := t.TempDir()
	path, snap := filepath.Join(dir, "state.db"), filepath.Join(dir, "snapshot.db")
	s := mustOpen(t, path, opstate.Options{SyncInterval: 500 * time.Millisecond})
	events, err := s.Watch(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "x", "v0")
	db := sqlDB(t, path)
	if _, err := db.Exec(`INSERT INTO operational_state VALUES ('ns', 'a', 'v', '2026-01-01T00:00:00.000Z', NULL)`); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events, 2*time.Second); ev.Key != "x" {
		t.Fatalf("event %+v; want the Store's own Set of x", ev)
	}
	if ev := recv(t, events, 2*time.Second); ev.Key != "a" {
		t.Fatalf("event %+v; want the insert of a: the Store has read the log past it", ev)
	}
	if _, err := db.Exec(`VACUUM INTO ?`, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO operational_state VALUES ('ns', 'w', 'new', '2026-01-01T00:00:00.000Z', NULL)`); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", "w", "new", true) // a miss: read from SQLite, and cached
	restore(t, path, snap)
	if _, err := db.Exec(insertRowsSQL(20, "k")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, s, "ns", "w", "")
	waitReset(t, events)
}
