package opstate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// documentedSyncInterval is the default Options.SyncInterval as README.md,
// docs/options.md and the package docs state it. The tests below open their Stores with the
// default, and compare with this figure rather than with
// opstate.DefaultSyncInterval, so that a change to the default fails them
// until the documentation changes with it.
const documentedSyncInterval = 5 * time.Millisecond

// syncSlack is what the tests allow on top of SyncInterval before a foreign
// write must be served: the watcher's tick, its query and the test's own
// polling may each be delayed by scheduling under -race on a shared 2-core
// machine. A few times larger than the delays seen, and far below what a
// broken bound would show.
const syncSlack = 250 * time.Millisecond

// staleBound is how soon a Store opened with the default SyncInterval must
// serve a write committed by anyone else.
const staleBound = documentedSyncInterval + syncSlack

// seeWithin polls s until Lookup(ns, key) returns want (ok says whether it
// should exist), measuring from since, and returns how long that took; it
// fails the test if that is more than bound.
func seeWithin(t *testing.T, s *opstate.Store, ns, key, want string, ok bool, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for {
		v, found, err := s.Lookup(ns, key)
		if err != nil {
			t.Fatal(err)
		}
		if v == want && found == ok {
			return time.Since(since)
		}
		if d := time.Since(since); d > bound {
			t.Fatalf("Lookup(%q, %q) = %q, %v %v after the write; want %q, %v within %v", ns, key, v, found, d, want, ok, bound)
		}
		time.Sleep(time.Millisecond)
	}
}

// warm reads every key once so that the cache holds them, present or
// absent.
func warm(t *testing.T, s *opstate.Store, ns string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := s.Get(ns, k); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForeignWrites checks that a Store with the default SyncInterval
// serves, within it (plus syncSlack), what another Store and plain SQL on
// another connection commit: new values of cached keys, keys it had cached
// as absent, deletes and dropped namespaces.
func TestForeignWrites(t *testing.T) {
	path := dbPath(t)
	reader := mustOpen(t, path, opstate.Options{})
	other := mustOpen(t, path, opstate.Options{})
	db := sqlDB(t, path)

	mustSet(t, reader, "flags", "dark_mode", "off")
	mustSet(t, reader, "flags", "beta", "on")
	mustSet(t, reader, "sess", "a", "1")
	mustSet(t, reader, "sess", "b", "2")
	warm(t, reader, "flags", "dark_mode", "beta", "absent", "shell")
	warm(t, reader, "sess", "a", "b")

	steps := []struct {
		name    string
		write   func() error
		ns, key string
		want    string
		ok      bool
	}{
		{"store: new value", func() error { return other.Set("flags", "dark_mode", "on") }, "flags", "dark_mode", "on", true},
		{"store: absent key", func() error { return other.Set("flags", "absent", "now") }, "flags", "absent", "now", true},
		{"store: delete", func() error { return other.Delete("flags", "beta") }, "flags", "beta", "", false},
		{"store: drop namespace", func() error { return other.DeleteNamespace("sess") }, "sess", "b", "", false},
		{"sql: insert", func() error {
			_, err := db.Exec(`INSERT INTO operational_state VALUES ('flags', 'shell', 'x', '2026-03-07T10:00:00.000Z', NULL)`)
			return err
		}, "flags", "shell", "x", true},
		{"sql: update", func() error {
			_, err := db.Exec(`UPDATE operational_state SET value = 'off' WHERE namespace = 'flags' AND key = 'dark_mode'`)
			return err
		}, "flags", "dark_mode", "off", true},
		{"sql: expire", func() error {
			_, err := db.Exec(`UPDATE operational_state SET expires_at = '2000-01-01T00:00:00Z' WHERE key = 'shell'`)
			return err
		}, "flags", "shell", "", false},
		{"sql: delete", func() error {
			_, err := db.Exec(`DELETE FROM operational_state WHERE namespace = 'flags' AND key = 'absent'`)
			return err
		}, "flags", "absent", "", false},
	}
	for _, st := range steps {
		// The reader has the key cached (its value, or absent) before the
		// foreign write.
		warm(t, reader, st.ns, st.key)
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		d := seeWithin(t, reader, st.ns, st.key, st.want, st.ok, time.Now(), staleBound)
		t.Logf("%s: seen after %v", st.name, d)
	}
}

// TestOwnWritesKeepCache checks that a Store's own writes do not empty its
// cache: reads of other keys keep being served from memory.
func TestOwnWritesKeepCache(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{SyncInterval: time.Millisecond})
	mustSet(t, s, "flags", "hot", "on")
	warm(t, s, "flags", "hot")
	misses := s.Stats().Misses
	for i := range 50 {
		mustSet(t, s, "flags", fmt.Sprint("k", i), "v")
		time.Sleep(time.Millisecond)
		wantGet(t, s, "flags", "hot", "on", true)
	}
	if n := s.Stats().Misses - misses; n != 0 {
		t.Errorf("own writes made %d reads of a cached key go to SQLite; want 0", n)
	}
}

// The child role "processes" is the other process of TestProcesses: it
// opens the file named by processesChildDB and performs the steps named
// by processesChildSteps: "flip" sets flags/dark_mode to "on", "race"
// runs raceWorkload.
const (
	processesChildDB    = "OPSTATE_CHILD_DB"
	processesChildSteps = "OPSTATE_CHILD_STEPS"
)

func init() { childRoles["processes"] = processesChild }

func processesChild() int {
	s, err := opstate.Open(os.Getenv(processesChildDB), opstate.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	var c childChecks
	switch steps := os.Getenv(processesChildSteps); steps {
	case "flip":
		if err := s.Set("flags", "dark_mode", "on"); err != nil {
			c.Errorf("%v", err)
		}
	case "race":
		raceWorkload(c.Errorf, s, "child")
	default:
		c.Errorf("%s=%q: no such steps", processesChildSteps, steps)
	}
	return c.status()
}

// raceWorkload writes and reads the keys shared by the processes of
// TestProcesses: each process writes its own name and a counter into the
// same keys, and checks that it never reads a value nobody wrote. It
// reports what goes wrong with errorf.
func raceWorkload(errorf func(format string, args ...any), s *opstate.Store, who string) {
	for i := range 300 {
		key := fmt.Sprint("k", i%5)
		if err := s.Set("shared", key, fmt.Sprintf("%s-%d", who, i)); err != nil {
			errorf("Set: %v", err)
			return
		}
		// A key only this process writes: every one must survive.
		if err := s.Set("own-"+who, fmt.Sprint(i), fmt.Sprint(i)); err != nil {
			errorf("Set: %v", err)
			return
		}
		v, err := s.Get("shared", fmt.Sprint("k", (i+2)%5))
		if err != nil {
			errorf("Get: %v", err)
			return
		}
		if v != "" && !strings.HasPrefix(v, "parent-") && !strings.HasPrefix(v, "child-") {
			errorf("Get = %q, a value nobody wrote", v)
			return
		}
	}
}

// childProcess returns the command that runs the "processes" child on
// the file at path, performing steps.
func childProcess(t *testing.T, path, steps string) *exec.Cmd {
	return childCommand(t, "processes", processesChildDB+"="+path, processesChildSteps+"="+steps)
}

// TestProcesses runs real separate processes on one file: a child flips a
// toggle that a running Store (default SyncInterval) has cached, which the
// Store must serve within the interval (plus syncSlack) of the child's
// exit, and then both processes write and read the same keys at once. At
// the end both see what the file holds, within the same bound.
func TestProcesses(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	mustSet(t, s, "flags", "dark_mode", "off")
	warm(t, s, "flags", "dark_mode")

	out, err := childProcess(t, path, "flip").CombinedOutput()
	exited := time.Now() // the child's Set returned before it exited
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("toggle flipped by another process seen %v after it exited", seeWithin(t, s, "flags", "dark_mode", "on", true, exited, staleBound))

	child := childProcess(t, path, "race")
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { raceWorkload(t.Errorf, s, "parent") })
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, childOut.String())
	}
	fresh := mustOpen(t, path, opstate.Options{CacheBytes: -1})
	// The child exits 0 only if every Set it made returned nil: all of
	// both processes' own keys are acknowledged and must be there.
	for _, who := range []string{"parent", "child"} {
		m, err := fresh.List("own-" + who)
		if err != nil || len(m) != 300 {
			t.Errorf("List(own-%s) holds %d keys, %v; want all 300 acknowledged", who, len(m), err)
		}
		for i := range 300 {
			if m[fmt.Sprint(i)] != fmt.Sprint(i) {
				t.Errorf("own-%s/%d = %q; want %d", who, i, m[fmt.Sprint(i)], i)
				break
			}
		}
	}
	for i := range 5 {
		key := fmt.Sprint("k", i)
		want, err := fresh.Get("shared", key)
		if err != nil || want == "" {
			t.Fatalf("file holds %q, %v for %s", want, err, key)
		}
		seeWithin(t, s, "shared", key, want, true, time.Now(), staleBound)
	}
	ctx := context.Background()
	var check string
	if err := sqlDB(t, path).QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// TestForeignWriteDuringOwnCommit has another connection overwrite a key
// between this Store's commit of it and the cache update that follows,
// long enough for the watcher to notice and empty the cache first. The
// Store must not then cache its own, older value: it must serve what the
// file holds.
func TestForeignWriteDuringOwnCommit(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{SyncInterval: 5 * time.Millisecond})
	db := sqlDB(t, path)
	var once sync.Once
	s.SetAfterApply(func() {
		once.Do(func() {
			if _, err := db.Exec(`UPDATE operational_state SET value = 'foreign' WHERE namespace = 'ns' AND key = 'k'`); err != nil {
				t.Error(err)
			}
			time.Sleep(50 * time.Millisecond) // ten watcher ticks
		})
	})
	mustSet(t, s, "ns", "k", "ours")
	time.Sleep(100 * time.Millisecond) // twenty more
	wantGet(t, s, "ns", "k", "foreign", true)
}
