package check

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// The environment of a child process: its role, and the database.
const (
	roleEnv = "OPENDB_CHECK_ROLE"
	pathEnv = "OPENDB_CHECK_PATH"
)

// Main runs the child role the environment names, if any, over d, and
// exits; otherwise it runs the tests. A driver's package calls it from
// TestMain.
func Main(m interface{ Run() int }, d Driver) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(writerChild(d, os.Getenv(pathEnv)))
	case "killed":
		os.Exit(killedChild(d, os.Getenv(pathEnv)))
	default:
		fmt.Fprintln(os.Stderr, "unknown role", os.Getenv(roleEnv))
		os.Exit(2)
	}
}

// child starts this test binary as a child in role on the database at
// path, with pipes to its standard input and output; it is killed when the
// test ends, if it still runs.
func child(t *testing.T, role, path string) (*exec.Cmd, *bufio.Writer, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, pathEnv+"="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	return cmd, bufio.NewWriter(in), sc
}

// openChild opens the application's handle and a Store over it in a
// child; it reports a failure on standard error.
func openChild(d Driver, path string) (*sql.DB, *opstate.Store, bool) {
	db, err := sql.Open(d.Name, d.DSN(path, appBusyMS, false))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sql.Open:", err)
		return nil, nil, false
	}
	s, err := opstate.OpenDB(db, opstate.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "OpenDB:", err)
		return nil, nil, false
	}
	return db, s, true
}

// otherProcess attacks "another process's writes are served within
// SyncInterval": for each of 30 keys, this process's Store reads the key
// (its absence is cached), a child process's Store over its own handle
// sets it, and from the moment the child says its Set returned, this
// Store must serve the value within SyncInterval and the slack.
func otherProcess(t *testing.T, d Driver) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpenDB(t, handle(t, d, path), opstate.Options{})
	_, in, out := child(t, "writer", path)
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("the child did not start: %q", out.Text())
	}
	const lag = opstate.DefaultSyncInterval + syncSlack
	var worst time.Duration
	for i := range 30 {
		k := fmt.Sprintf("p%d", i)
		if _, ok, err := s.Lookup("ns", k); err != nil || ok {
			t.Fatalf("Lookup(%s) before the child's Set = %v, %v; want absent", k, ok, err)
		}
		fmt.Fprintln(in, k)
		in.Flush()
		if !out.Scan() {
			t.Fatal("the child ended")
		}
		if got := out.Text(); got != "set "+k {
			t.Fatalf("the child says %q; want %q", got, "set "+k)
		}
		acked := time.Now()
		for {
			v, ok, err := s.Lookup("ns", k)
			if err != nil {
				t.Fatal(err)
			}
			if ok && v == "from the child" {
				break
			}
			if time.Since(acked) > lag {
				t.Fatalf("%v after the child's Set of %s returned, this Store serves %q, %v; want the child's value within %v",
					time.Since(acked), k, v, ok, lag)
			}
			time.Sleep(100 * time.Microsecond)
		}
		worst = max(worst, time.Since(acked))
	}
	t.Logf("the slowest of 30 keys was served %v after the child's Set returned (bound %v)", worst, lag)
}

// writerChild sets, through a Store over a handle of its own, each key its
// standard input names, and says "set KEY" once its Set returned.
func writerChild(d Driver, path string) int {
	db, s, ok := openChild(d, path)
	if !ok {
		return 1
	}
	defer db.Close()
	defer s.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := s.Set("ns", in.Text(), "from the child"); err != nil {
			fmt.Fprintln(os.Stderr, "Set:", err)
			return 1
		}
		fmt.Println("set " + in.Text())
	}
	return 0
}

// kill attacks "no acknowledged write is lost": a child sets keys from
// four goroutines through a Store over its handle, and says each one whose
// Set returned; 400 ms after its first, it is killed with SIGKILL
// mid-write. A new
// handle on the file must find every acknowledged key, with its value,
// in a sound file. Three rounds on one file.
func kill(t *testing.T, d Driver) {
	path := filepath.Join(t.TempDir(), "state.db")
	acked := map[string]bool{}
	for round := range 3 {
		cmd, _, out := child(t, "killed", path)
		var mu sync.Mutex
		done := make(chan struct{})
		first := make(chan struct{}) // closed at the child's first acknowledgement
		go func() {
			defer close(done)
			var once sync.Once
			for out.Scan() {
				if k, ok := strings.CutPrefix(out.Text(), "acked "); ok {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
					once.Do(func() { close(first) })
				}
			}
		}()
		// Killed 400 ms into its writes, however long it took to start
		// (a loaded machine can take longer than that to open a Store).
		select {
		case <-first:
		case <-done:
		case <-time.After(time.Minute):
		}
		time.Sleep(400 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-done // every line written before the kill is read
		cmd.Wait()
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == 0 {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}
	}

	db := handle(t, d, path)
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("after SIGKILL, integrity_check = %q, %v", integrity, err)
	}
	have := map[string]string{}
	rows, err := db.Query("SELECT key, value FROM operational_state WHERE namespace = 'ns'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		have[k] = v
	}
	rows.Close()
	lost := 0
	for k := range acked {
		if have[k] != "v"+k {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("after SIGKILL, %d of %d acknowledged writes are missing or wrong", lost, len(acked))
	}
	t.Logf("3 rounds killed mid-write: %d writes acknowledged, %d lost", len(acked), lost)
}

// killedChild sets keys from four goroutines until it is killed, and says
// "acked KEY" for each whose Set returned.
func killedChild(d Driver, path string) int {
	_, s, ok := openChild(d, path)
	if !ok {
		return 1
	}
	var mu sync.Mutex // one line at a time on standard output
	var wg sync.WaitGroup
	prefix := fmt.Sprintf("%d-", os.Getpid())
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("%s%d-%d", prefix, g, i)
				if err := s.Set("ns", k, "v"+k); err != nil {
					fmt.Fprintln(os.Stderr, "Set:", err)
					return
				}
				mu.Lock()
				fmt.Println("acked " + k)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 1
}
