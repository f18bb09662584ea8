package persist_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// walBackstop is the size of a -wal file holding SQLite's autocheckpoint
// backstop, 4096 frames of 4 KiB pages with their 24-byte headers, after
// the log's 32-byte header.
const walBackstop = 32 + 4096*(4096+24)

// walFrames returns how many frames the log of the file at path holds,
// asked of SQLite on a connection of its own (which checkpoints it).
func walFrames(t *testing.T, path string) int64 {
	t.Helper()
	var busy, log, done int64
	if err := rawDB(t, path).QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	return log
}

// TestLogged checks that the frames a DB counts are the frames its commits
// put in the log, for every kind of write, alone and in batches: the count
// decides when a checkpoint is due.
func TestLogged(t *testing.T) {
	key := func(i int) string { return fmt.Sprintf("k%05d", i*7919%10_000) } // scattered
	for _, c := range []struct {
		name   string
		writes func(t *testing.T, db *persist.DB)
	}{
		{"single puts", func(t *testing.T, db *persist.DB) {
			for i := range 300 {
				apply(t, db, t0, putW("ns", key(i), strings.Repeat("v", i), 0))
			}
		}},
		{"batches", func(t *testing.T, db *persist.DB) {
			for b := range 20 {
				var ws []persist.Write
				for i := range 30 {
					ws = append(ws, putW("ns", key(b*30+i), "v", t0+int64(i)*ms))
				}
				apply(t, db, t0, ws...)
			}
		}},
		{"deletes and sweeps", func(t *testing.T, db *persist.DB) {
			for i := range 200 {
				apply(t, db, t0, putW("ns", key(i), "v", t0+ms))
			}
			for i := range 50 {
				apply(t, db, t0, deleteW("ns", key(i)))
			}
			if _, err := db.DeleteExpired(t.Context(), t0+2*ms, 100); err != nil {
				t.Fatal(err)
			}
			apply(t, db, t0+2*ms, deleteNamespaceW("ns"))
		}},
		{"a large value", func(t *testing.T, db *persist.DB) {
			apply(t, db, t0, putW("ns", "big", strings.Repeat("x", 1<<20), 0))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := mustOpen(t, "")
			// Checkpoint what Open wrote, so that the first write starts
			// the log over and the log holds the frames of c.writes alone.
			walFrames(t, db.Path())
			c.writes(t, db)
			got := db.Logged()
			if want := walFrames(t, db.Path()); got != want {
				t.Errorf("Logged() = %d; want %d, the frames SQLite reports in the log", got, want)
			}
		})
	}
}

// TestCheckpointDue checks that CheckpointDue fires once the commits have
// put CheckpointFrames frames in the log, and not before.
func TestCheckpointDue(t *testing.T) {
	db := mustOpen(t, "")
	for i := 0; ; i++ {
		apply(t, db, t0, putW("ns", fmt.Sprintf("k%05d", i), strings.Repeat("v", 1000), 0))
		select {
		case <-db.CheckpointDue():
			if n := db.Logged(); n < persist.CheckpointFrames {
				t.Errorf("CheckpointDue fired at %d frames; want %d", n, persist.CheckpointFrames)
			}
			return
		default:
			if n := db.Logged(); n >= persist.CheckpointFrames {
				t.Fatalf("CheckpointDue did not fire at %d frames; want it at %d", n, persist.CheckpointFrames)
			}
		}
	}
}

// TestCheckpointUnderWrites runs checkpoints while a writer commits new
// keys of 1 KiB values without pause, the load under which a passive
// checkpoint never catches up, and checks that each one completes (within
// three tries), that the log then starts over (the -wal file stays far
// below SQLite's backstop, past which a commit would checkpoint itself),
// and that the count of frames starts over with it.
func TestCheckpointUnderWrites(t *testing.T) {
	const checkpoints = 8
	db := mustOpen(t, "")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		value := strings.Repeat("v", 1024)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Apply(t.Context(), t0, []persist.Write{putW("ns", fmt.Sprintf("k%07d", i), value, 0)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for range checkpoints {
		<-db.CheckpointDue()
		// As the Store's checkpointer does, try again when a checkpoint
		// stays incomplete: on a loaded machine (the packages' tests run
		// side by side) a pass can be starved once; three in a row would
		// mean it never catches up.
		var r persist.Checkpointed
		var err error
		for try := 0; try < 3 && err == nil && !r.Complete; try++ {
			r, err = db.Checkpoint(t.Context())
		}
		if err != nil || !r.Complete {
			t.Fatalf("Checkpoint() = %+v, %v, three times; want complete", r, err)
		}
		// The count started over: what it holds now the writer, which
		// goes on, appended after the checkpoint returned (a few writes,
		// more when this goroutine is descheduled), far below the
		// threshold it had reached.
		if n := db.Logged(); n >= persist.CheckpointFrames/2 {
			t.Errorf("after a complete checkpoint, Logged() = %d; want it started over (< %d)", n, persist.CheckpointFrames/2)
		}
	}
	fi, err := os.Stat(db.Path() + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > walBackstop {
		t.Errorf("after %d checkpoints the -wal file has %d bytes; want at most %d (4096 frames)", checkpoints, fi.Size(), walBackstop)
	}
}
