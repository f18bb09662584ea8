package persist

import (
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestSizeCheckRace opens a healthy file again and again while another
// connection keeps writing to it and closing (which, in WAL mode,
// checkpoints, grows the file and removes the -wal): the size Open compares
// with the header must never come from the other side of a commit, and
// Open must not take a file being written for a damaged one.
func TestSizeCheckRace(t *testing.T) {
	for _, mode := range []string{"WAL", "DELETE"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.db")
			db0, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db0.Exec("PRAGMA journal_mode=" + mode + "; CREATE TABLE t(v BLOB)"); err != nil {
				t.Fatal(err)
			}
			db0.Close()
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Go(func() {
				for !stop.Load() {
					db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := db.Exec("INSERT INTO t VALUES (zeroblob(40000))"); err != nil {
						t.Error(err)
					}
					db.Close()
				}
			})
			opens, busy := 0, 0
			for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); opens++ {
				// A file in rollback mode must be switched to WAL, which
				// needs a moment with no other connection in it: under a
				// writer that never pauses, Open may give up with ErrBusy
				// after its BusyTimeout, and that is the promise. Anything
				// else is a healthy file taken for a damaged one.
				db, err := Open(path, Options{BusyTimeout: 200 * time.Millisecond})
				if errors.Is(err, ErrBusy) {
					busy++
					continue
				}
				if err != nil {
					t.Errorf("open %d of a healthy file being written: %v", opens, err)
					break
				}
				if err := db.Close(); err != nil {
					t.Errorf("close %d: %v", opens, err)
				}
			}
			stop.Store(true)
			wg.Wait()
			t.Logf("%d opens, %d of them ErrBusy", opens, busy)
		})
	}
}
