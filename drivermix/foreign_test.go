package drivermix_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // "sqlite3": SQLite's C library, a second copy in the process
	_ "modernc.org/sqlite"          // "sqlite": the copy opstate uses

	"github.com/d8da9184/opstate"
)

// Environment of the child process of TestSecondLibrary.
const (
	roleEnv   = "DRIVERMIX_ROLE"   // "writer": run writer instead of the tests
	dbEnv     = "DRIVERMIX_DB"     // the database path
	driverEnv = "DRIVERMIX_DRIVER" // the application's database/sql driver
)

// TestMain runs the child role named in the environment, if any, instead
// of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "writer" {
		os.Exit(writer())
	}
	os.Exit(m.Run())
}

// How long the child's Store writes before the application starts, and in
// all.
const (
	appAfter = 100 * time.Millisecond
	runFor   = 1500 * time.Millisecond
)

// TestSecondLibrary attacks the promise that acknowledged writes survive,
// with the application keeping a table of its own in the Store's file
// through its own database/sql pool, which opens and closes a connection
// for every statement (SetMaxIdleConns(0)), as pools under ordinary churn
// do. A child process opens a Store and sets keys from four goroutines;
// after appAfter the application reads operational_state and inserts into
// its table from two goroutines; after runFor the child reports what was
// acknowledged and is killed with SIGKILL. Every acknowledged write must
// be in the file, and the file must be sound.
//
// Through github.com/mattn/go-sqlite3, a second copy of SQLite in the
// process, the two copies do not see each other's locks: acknowledged
// writes are lost and the file is corrupted. The Store must see the other
// library and fail every write from then on with ErrForeignSQLite, never
// acknowledging one that is then lost from a sound file; both with the
// OFD locks opstate uses for the database file and with POSIX locks,
// where the other library's last close deletes the -wal under the Store.
// The other library can still damage the file, and with it writes the
// Store acknowledged before it arrived (in about one run of four under
// -race): the test logs that, and fails only if the Store never said so
// with ErrForeignSQLite. Through
// modernc.org/sqlite, the copy opstate uses, the application is safe:
// nothing may be refused or lost.
func TestSecondLibrary(t *testing.T) {
	requireMattn(t)
	for _, tt := range []struct {
		name, driver string
		env          []string
		foreign      bool
	}{
		{"mattn", "sqlite3", nil, true},
		{"mattn-posix-locks", "sqlite3", []string{"MODERNC_SQLITE_OFD_LOCK=0"}, true},
		{"modernc", "sqlite", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(append(withoutEnv(os.Environ(), "MODERNC_SQLITE_OFD_LOCK"),
				roleEnv+"=writer", dbEnv+"="+path, driverEnv+"="+tt.driver), tt.env...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := readReport(t, bufio.NewScanner(out))
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if r == nil {
				t.Fatalf("child ended without its report\nstderr: %s", stderr.String())
			}

			have, integrity := readBack(t, path)
			lost := 0
			for _, k := range r.acked {
				if !have[k] {
					lost++
				}
			}
			t.Logf("%d writes acknowledged, %d failed (first: %v), %d lost; integrity_check: %s; application: %s",
				len(r.acked), r.failed, r.firstErr, lost, integrity, r.app)
			switch {
			case integrity == "ok" && lost > 0:
				t.Errorf("after SIGKILL, %d of %d acknowledged writes are missing from a sound file; want none", lost, len(r.acked))
			case integrity != "ok" && !tt.foreign:
				t.Errorf("integrity_check after SIGKILL beside %s: %s; want ok", tt.driver, integrity)
			case integrity != "ok":
				// The other library's first open rebuilds the WAL index
				// under the Store, and its checkpoints and the Store's
				// frames written before it was seen can then damage the
				// file: no Store can undo what another library does to
				// it. What must hold is that the Store said so (below).
				t.Logf("the other library damaged the file (%s); the Store reported it: %v", integrity, r.refused)
			}
			switch {
			case tt.foreign && !r.refused:
				t.Errorf("no write failed with ErrForeignSQLite beside %s; want the Store to stop writing", tt.driver)
			case !tt.foreign && r.failed > 0:
				t.Errorf("%d writes failed beside modernc.org/sqlite (first: %s); want none", r.failed, r.firstErr)
			}
		})
	}
}

// TestOpenBesideSecondLibrary checks that Open refuses a file that the
// application has open through github.com/mattn/go-sqlite3, with a
// connection in its pool, and that the file's rows are untouched.
func TestOpenBesideSecondLibrary(t *testing.T) {
	requireMattn(t)
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := opstate.Open(path, opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("ns", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	app, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var n int
	if err := app.QueryRow("SELECT count(*) FROM operational_state").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the application counts %d rows, %v; want 1", n, err)
	}
	s, err = opstate.Open(path, opstate.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open beside the application's go-sqlite3 connection succeeded; want ErrForeignSQLite")
	}
	if !errors.Is(err, opstate.ErrForeignSQLite) {
		t.Fatalf("Open = %v; want ErrForeignSQLite", err)
	}
	t.Logf("Open: %v", err)
	var v string
	if err := app.QueryRow("SELECT value FROM operational_state WHERE namespace = 'ns' AND key = 'k'").Scan(&v); err != nil || v != "v" {
		t.Errorf("after the refused Open the application reads %q, %v; want \"v\"", v, err)
	}
}

// requireMattn skips the test where github.com/mattn/go-sqlite3 was built
// without cgo, and so without SQLite; with CI=true it fails instead, so
// that CI never passes without running it.
func requireMattn(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite3", ":memory:")
	if err == nil {
		err = db.Ping()
		db.Close()
	}
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and github.com/mattn/go-sqlite3 does not work here (it needs cgo and a C compiler): %v", err)
	}
	if err != nil {
		t.Skipf("github.com/mattn/go-sqlite3 does not work here (it needs cgo and a C compiler): %v", err)
	}
}

// report is what the child says it did.
type report struct {
	acked    []string // the keys whose Set returned nil
	failed   int      // Sets that failed
	refused  bool     // one failed with ErrForeignSQLite
	firstErr string
	app      string // what the application did
}

// readReport reads the child's report: "acked KEY...", "failed N",
// "refused BOOL", "first ERR", "app TEXT", "done". It returns nil if the
// child ends first.
func readReport(t *testing.T, lines *bufio.Scanner) *report {
	t.Helper()
	lines.Buffer(nil, 64<<20)
	var r report
	for lines.Scan() {
		key, rest, _ := strings.Cut(lines.Text(), " ")
		switch key {
		case "acked":
			r.acked = strings.Fields(rest)
		case "failed":
			fmt.Sscan(rest, &r.failed)
		case "refused":
			r.refused = rest == "true"
		case "first":
			r.firstErr = rest
		case "app":
			r.app = rest
		case "done":
			return &r
		}
	}
	return nil
}

// readBack opens the file at path through modernc.org/sqlite, in this
// process, and returns the keys of namespace ns and what integrity_check
// says.
func readBack(t *testing.T, path string) (map[string]bool, string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	integrity := ""
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		integrity = err.Error()
	} else {
		var found []string
		for rows.Next() {
			var line string
			rows.Scan(&line)
			found = append(found, line)
		}
		rows.Close()
		integrity = strings.Join(found, "; ")
	}
	have := map[string]bool{}
	rows, err = db.Query("SELECT key FROM operational_state WHERE namespace = 'ns'")
	if err != nil {
		t.Logf("reading the keys back: %v", err)
		return have, integrity
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Logf("reading the keys back: %v", err)
			break
		}
		have[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Logf("reading the keys back: %v", err)
	}
	return have, integrity
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

// writer is the child of TestSecondLibrary: a Store on the file at dbEnv,
// written by four goroutines, each setting keys "w<g>-<i>" one after
// another until ErrForeignSQLite (past any other error), and after
// appAfter an application on the same file through driverEnv's driver,
// until runFor. Then it writes its report (see readReport) and waits to be
// killed.
func writer() int {
	path, driver := os.Getenv(dbEnv), os.Getenv(driverEnv)
	s, err := opstate.Open(path, opstate.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Open:", err)
		return 1
	}
	deadline := time.Now().Add(runFor)
	var (
		mu       sync.Mutex // guards acked, failed, firstErr
		acked    []string
		failed   int
		firstErr error
		refused  atomic.Bool
		wg       sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && !refused.Load(); i++ {
				k := fmt.Sprintf("w%d-%d", g, i)
				err := s.Set("ns", k, k)
				mu.Lock()
				if err == nil {
					acked = append(acked, k)
				} else {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
				if errors.Is(err, opstate.ErrForeignSQLite) {
					refused.Store(true)
				}
			}
		}()
	}
	time.Sleep(appAfter)
	app, err := sql.Open(driver, "file:"+path+map[string]string{
		"sqlite3": "?_busy_timeout=5000",
		"sqlite":  "?_pragma=busy_timeout(5000)",
	}[driver])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sql.Open:", err)
		return 1
	}
	app.SetMaxIdleConns(0)
	var appOps, appErrs atomic.Int64
	ctx := context.Background()
	if _, err := app.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS app (v TEXT)"); err != nil {
		appErrs.Add(1)
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var n int
				if err := app.QueryRowContext(ctx, "SELECT count(*) FROM operational_state").Scan(&n); err != nil {
					appErrs.Add(1)
				}
				if _, err := app.ExecContext(ctx, "INSERT INTO app VALUES ('x')"); err != nil {
					appErrs.Add(1)
				}
				appOps.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("acked", strings.Join(acked, " "))
	fmt.Println("failed", failed)
	fmt.Println("refused", refused.Load())
	fmt.Println("first", firstErr)
	fmt.Printf("app %d rounds of a read and an insert, %d failed\n", appOps.Load(), appErrs.Load())
	fmt.Println("done")
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "not killed within a minute")
	return 1
}
