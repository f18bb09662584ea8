package persist_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

// These tests play a second SQLite library in the process with what such a
// library does to the files: a second descriptor of the -shm, the lock on
// its byte 128 taken through that descriptor (SQLite's open of a WAL index
// it takes itself to be the first user of), a -wal or -shm deleted under
// the DB (its last connection's close). Each checks that the DB stops
// writing with ErrForeignSQLite, and that reads go on.

// shmDescriptor opens a descriptor of the -shm of the database at path
// beside SQLite's, and closes it when the test ends (which drops the
// process's locks on the file: the DB is refusing writes by then).
func shmDescriptor(t *testing.T, path string) int {
	t.Helper()
	fd, err := syscall.Open(path+"-shm", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// lockShm takes a POSIX lock of kind typ on byte 128 of the file open as fd.
func lockShm(t *testing.T, fd int, typ int16) {
	t.Helper()
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: 128, Len: 1}
	if err := syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
}

// put writes key k, as one batch.
func put(db *persist.DB, k string) error {
	_, err := db.Apply(context.Background(), t0, []persist.Write{putW("ns", k, k, 0)})
	return err
}

// waitRefused writes until a write fails, for 5s at most, and checks that
// it failed with ErrForeignSQLite; it returns that error.
func waitRefused(t *testing.T, db *persist.DB) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		err := put(db, "k")
		switch {
		case errors.Is(err, persist.ErrForeignSQLite):
			return err
		case err != nil:
			t.Fatalf("write %d = %v; want nil or ErrForeignSQLite", i, err)
		case time.Now().After(deadline):
			t.Fatalf("writes still succeed %v after the other library opened the file; want ErrForeignSQLite", 5*time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}

// wantRefusing checks that db refuses every kind of write with
// ErrForeignSQLite, and still reads.
func wantRefusing(t *testing.T, db *persist.DB) {
	t.Helper()
	ctx := context.Background()
	if err := put(db, "after"); !errors.Is(err, persist.ErrForeignSQLite) {
		t.Errorf("Apply after the finding = %v; want ErrForeignSQLite", err)
	}
	if _, err := db.DeleteExpired(ctx, t0, 10); !errors.Is(err, persist.ErrForeignSQLite) {
		t.Errorf("DeleteExpired after the finding = %v; want ErrForeignSQLite", err)
	}
	if _, err := db.Checkpoint(ctx); !errors.Is(err, persist.ErrForeignSQLite) {
		t.Errorf("Checkpoint after the finding = %v; want ErrForeignSQLite", err)
	}
	if _, ok, err := db.Get(ctx, "ns", "before"); err != nil || !ok {
		t.Errorf("Get after the finding = %v, %v; want the row, nil", ok, err)
	}
	if _, ok, _ := db.Get(ctx, "ns", "after"); ok {
		t.Errorf("a refused write is in the file")
	}
}

// TestForeignLockTaken plays another library's open of the -shm: a second
// descriptor takes the lock on byte 128, which moves the process's lock
// from SQLite's descriptor to it. The very next write must fail, although
// it commits: the check that follows each commit sees the lock gone.
func TestForeignLockTaken(t *testing.T) {
	path := tempPath(t)
	db := mustOpen(t, path)
	if err := put(db, "before"); err != nil {
		t.Fatal(err)
	}
	fd := shmDescriptor(t, path)
	lockShm(t, fd, syscall.F_WRLCK)
	lockShm(t, fd, syscall.F_RDLCK)
	err := put(db, "during")
	if !errors.Is(err, persist.ErrForeignSQLite) {
		t.Fatalf("the first write after another open of the -shm = %v; want ErrForeignSQLite", err)
	}
	if !strings.HasPrefix(err.Error(), "opstate: ") || !strings.Contains(err.Error(), "modernc.org/sqlite") {
		t.Errorf("error %q; want an opstate error that says to use modernc.org/sqlite", err)
	}
	wantRefusing(t, db)
}

// TestForeignDescriptor plays another library that opened the -shm while
// another process held the lock on byte 128 (it then takes a read lock of
// its own, which merges into the process's): only the count of the -shm's
// descriptors shows it.
func TestForeignDescriptor(t *testing.T) {
	path := tempPath(t)
	db := mustOpen(t, path)
	if err := put(db, "before"); err != nil {
		t.Fatal(err)
	}
	shmDescriptor(t, path)
	if err := waitRefused(t, db); !strings.Contains(err.Error(), "2 descriptors") {
		t.Errorf("error %q; want it to say the -shm has 2 descriptors", err)
	}
	wantRefusing(t, db)
}

// TestForeignDeleted plays another library's last close, which deletes the
// -wal and the -shm (here one at a time) while the DB still writes to them.
func TestForeignDeleted(t *testing.T) {
	for _, suffix := range []string{"-wal", "-shm"} {
		t.Run(suffix, func(t *testing.T) {
			path := tempPath(t)
			db := mustOpen(t, path)
			if err := put(db, "before"); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path + suffix); err != nil {
				t.Fatal(err)
			}
			if err := waitRefused(t, db); !strings.Contains(err.Error(), suffix+" was deleted") {
				t.Errorf("error %q; want it to say %s was deleted", err, suffix)
			}
			wantRefusing(t, db)
		})
	}
}

// TestForeignAfterIdle checks that a DB whose watcher stopped checking
// (nothing was written for a while) checks before its next write: that
// write fails, not one later.
func TestForeignAfterIdle(t *testing.T) {
	path := tempPath(t)
	db := mustOpen(t, path)
	if err := put(db, "before"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !db.GuardDormant() {
		if time.Now().After(deadline) {
			t.Fatal("the watcher still checks 10s after the last write")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := put(db, "after"); !errors.Is(err, persist.ErrForeignSQLite) {
		t.Fatalf("the first write after the -wal was deleted = %v; want ErrForeignSQLite", err)
	}
}

// TestForeignOpenRefused checks that Open refuses a file that another
// library has open in this process, or whose -wal one deleted while this
// process had it open.
func TestForeignOpenRefused(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		do         func(t *testing.T, path string)
	}{
		{"second descriptor", "2 descriptors", func(t *testing.T, path string) { shmDescriptor(t, path) }},
		{"lock taken", "was taken over", func(t *testing.T, path string) {
			fd := shmDescriptor(t, path)
			lockShm(t, fd, syscall.F_WRLCK)
			lockShm(t, fd, syscall.F_RDLCK)
			syscall.Close(fd) // a close drops the lock too
		}},
		{"-wal deleted", "deleted, is still open", func(t *testing.T, path string) {
			if err := os.Remove(path + "-wal"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			first := mustOpen(t, path)
			if err := put(first, "before"); err != nil {
				t.Fatal(err)
			}
			tt.do(t, path)
			db, err := persist.Open(path, persist.Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded; want ErrForeignSQLite")
			}
			if !errors.Is(err, persist.ErrForeignSQLite) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v; want ErrForeignSQLite saying %q", err, tt.want)
			}
		})
	}
}

// TestForeignNoFalseAlarm checks that what shares a file safely is not
// taken for another library: a second DB on the same file in this process,
// DBs opened and closed beside them, and an application's own pool of
// connections through modernc.org/sqlite that opens and closes a
// connection for every statement and writes a table of its own.
func TestForeignNoFalseAlarm(t *testing.T) {
	path := tempPath(t)
	a, b := mustOpen(t, path), mustOpen(t, path)
	app := rawDB(t, path+"?_pragma=busy_timeout(5000)")
	app.SetMaxIdleConns(0)
	if _, err := app.Exec("CREATE TABLE app (v TEXT)"); err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(500 * time.Millisecond)
	done := make(chan error, 3)
	for _, db := range []*persist.DB{a, b} {
		go func() {
			for i := 0; time.Now().Before(stop); i++ {
				if err := put(db, "k"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		for time.Now().Before(stop) {
			if _, err := app.Exec("INSERT INTO app VALUES ('x')"); err != nil {
				done <- err
				return
			}
			db, err := persist.Open(path, persist.Options{})
			if err != nil {
				done <- err
				return
			}
			if err := db.Close(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("beside safe users of the file: %v; want no error", err)
		}
	}
}

// TestForeignWatcherStops checks that Close stops the goroutine that
// watches the file, and that a private database runs none.
func TestForeignWatcherStops(t *testing.T) {
	db, err := persist.Open(tempPath(t), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !db.GuardRunning() {
		t.Fatal("no watcher runs after Open")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db.GuardRunning() {
		t.Error("the watcher still runs after Close")
	}
	mem := openMemory(t, persist.Options{})
	if mem.GuardRunning() {
		t.Error("a private database runs a watcher")
	}
}

// TestForeignExplainsDamage plays another library whose open damaged what
// the DB reads before any check saw it: the write fails with ErrCorrupt,
// ErrIO or ErrNotDatabase, and the Store stops writing on that. The error
// must name the other library too, found by a check run at once; an error
// of another kind, or damage with no other library in sight, stays as it
// was.
func TestForeignExplainsDamage(t *testing.T) {
	path := tempPath(t)
	db := mustOpen(t, path)
	if err := put(db, "before"); err != nil {
		t.Fatal(err)
	}
	corrupt := fmt.Errorf("%w: database disk image is malformed", persist.ErrCorrupt)
	if err := db.Explain(corrupt); err != corrupt {
		t.Fatalf("Explain(damage) with no other library = %v; want the damage alone", err)
	}
	shmDescriptor(t, path)
	busy := fmt.Errorf("%w: database is locked", persist.ErrBusy)
	if err := db.Explain(busy); err != busy {
		t.Errorf("Explain(busy) = %v; want it unchanged", err)
	}
	for _, damage := range []error{persist.ErrCorrupt, persist.ErrIO, persist.ErrNotDatabase} {
		err := db.Explain(fmt.Errorf("%w: from SQLite", damage))
		if !errors.Is(err, persist.ErrForeignSQLite) || !errors.Is(err, damage) {
			t.Errorf("Explain(%v) beside a second descriptor of the -shm = %v; want ErrForeignSQLite and the damage", damage, err)
		}
	}
	if err := put(db, "after"); !errors.Is(err, persist.ErrForeignSQLite) {
		t.Errorf("a write after the finding = %v; want ErrForeignSQLite", err)
	}
}
