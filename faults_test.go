//go:build linux

package opstate_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// Environment of the disk-full child process; each is set only in the
// child.
const (
	diskFullChildEnv = "OPSTATE_DISKFULL_CHILD" // database path
	diskFullCacheEnv = "OPSTATE_DISKFULL_CACHE" // "off": the child's Store has no cache
)

// lockChildEnv, set only in the environment of the child lockHolderSQL,
// is the path of the database whose write lock it holds.
const lockChildEnv = "OPSTATE_LOCK_CHILD"

// diskFullHeadroom is how far above the largest file the child's
// file-size limit lies: room for a few writes before they fail.
const diskFullHeadroom = 64 << 10

// diskFullWriters is the number of goroutines writing at once in the
// child, so that some writes share a transaction that fails as a whole.
const diskFullWriters = 4

// diskFullSteps bounds each writer's steps: with values growing by 200
// bytes a step, the WAL passes the limit long before.
const diskFullSteps = 300

// growValue is the value of a writer's step i: 200*(i+1) bytes that say
// which step wrote them.
func growValue(i int) string {
	unit := fmt.Sprintf("%d,", i)
	return strings.Repeat(unit, 200*(i+1)/len(unit)+1)[:200*(i+1)]
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestDiskFull runs a child process (TestDiskFullChild) whose file-size
// limit (RLIMIT_FSIZE) lies a little above the store's files, so that its
// writes start failing as the WAL grows, as they would on a full disk. The
// child's writers (growWriters) write ever larger values, concurrently,
// and check in-process that every failed write returns ErrDiskFull or
// ErrIO and is never served: the key keeps its old value (or stays
// missing) for Get and List, from the cache and with the cache off. The
// child acknowledges each write that returned nil on stdout.
//
// The parent then opens the file without a limit and checks that it holds
// exactly the acknowledged writes, that at least one write was
// acknowledged and at least one failed, and that PRAGMA integrity_check
// says ok.
func TestDiskFull(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		seed, want := diskFullSeed(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(), diskFullChildEnv+"="+path)
		if opts.CacheBytes < 0 {
			cmd.Env = append(cmd.Env, diskFullCacheEnv+"=off")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
		}

		acks, fails := 0, map[string]int{}
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "ack":
				i, err := strconv.Atoi(f[2])
				if err != nil {
					t.Fatalf("child line %q: %v", line, err)
				}
				want[f[1]] = growValue(i)
				acks++
			case len(f) == 2 && f[0] == "deleted":
				delete(want, f[1])
				acks++
			case len(f) == 4 && f[0] == "fail":
				fails[f[3]]++
			case len(f) > 0 && (f[0] == "limit" || f[0] == "error" || f[0] == "batches:" || f[0] == "close"):
				t.Logf("child: %s", strings.TrimSpace(line))
			}
		}
		t.Logf("child: %d writes acknowledged, failures by kind: %v", acks, fails)
		if acks == 0 || len(fails) == 0 {
			t.Fatalf("child acknowledged %d writes and failed %v; want some of each\nstdout:\n%s", acks, fails, out)
		}

		r := mustOpen(t, path, opstate.Options{CacheBytes: -1})
		wantAcknowledged(t, r, seed, want)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		crashIntegrity(t, path)
	})
}

// diskFullSeed writes what the disk-full tests start from: 50 keys of
// namespace "seed" and each writer's "grow"/"g<g>-same" = "initial". It
// returns the two namespaces' contents.
func diskFullSeed(t *testing.T, s *opstate.Store) (seed, grow map[string]string) {
	t.Helper()
	seed, grow = map[string]string{}, map[string]string{}
	for i := range 50 {
		k, v := fmt.Sprint(i), strings.Repeat("s", 500)
		mustSet(t, s, "seed", k, v)
		seed[k] = v
	}
	for g := range diskFullWriters {
		key := fmt.Sprintf("g%d-same", g)
		mustSet(t, s, "grow", key, "initial")
		grow[key] = "initial"
	}
	return seed, grow
}

// wantAcknowledged checks that s holds exactly seed in namespace "seed" and
// grow in namespace "grow".
func wantAcknowledged(t *testing.T, s *opstate.Store, seed, grow map[string]string) {
	t.Helper()
	got, err := s.List("grow")
	if err != nil {
		t.Fatalf("List(grow) = %v", err)
	}
	for k, v := range grow {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("grow/%s = %.20q (present: %v); want the acknowledged %.20q", k, g, ok, v)
		}
	}
	for k, g := range got {
		if _, ok := grow[k]; !ok {
			t.Errorf("grow/%s = %.20q is present, but its write failed", k, g)
		}
	}
	if got, err := s.List("seed"); err != nil || !maps.Equal(got, seed) {
		t.Errorf("List(seed) holds %d keys, %v; want the %d written before the disk filled", len(got), err, len(seed))
	}
}

// growOutcome is one write of growWriters: a Set of growValue(I) to Key, or
// a Delete of Key, and what it returned.
type growOutcome struct {
	Key    string
	I      int
	Delete bool
	Err    error
}

// growWriters runs diskFullWriters writers on s, which fill the disk under
// it, and returns their writes in the order they returned (each key has
// one writer, so a key's writes are in the order they were made).
//
// Each writer g, at each step i, overwrites "grow"/"g<g>-same" and creates
// "grow"/"g<g>-k<i>", both with growValue(i), until three steps after its
// first failure; then it deletes its g<g>-k0. Before and after each write it
// reads the key, so that a cached Store holds the old value (or holds the
// key as absent) when the write fails, and checks that a failed write is
// not served: Lookup returns what the writer's last acknowledged write of
// the key stored, and so does List once the writer is done.
func growWriters(t testing.TB, s *opstate.Store) []growOutcome {
	var mu sync.Mutex // guards out
	var out []growOutcome
	record := func(o growOutcome) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, o)
	}
	var wg sync.WaitGroup
	for g := range diskFullWriters {
		wg.Go(func() {
			same := fmt.Sprintf("g%d-same", g)
			want := map[string]string{same: "initial"} // what this writer acknowledged
			// served checks what Lookup returns for key.
			served := func(key string) {
				old, ok := want[key]
				wantGet(t, s, "grow", key, old, ok)
			}
			failedAt := -1
			for i := 0; i < diskFullSteps && (failedAt < 0 || i <= failedAt+3); i++ {
				v := growValue(i)
				for _, key := range []string{same, fmt.Sprintf("g%d-k%d", g, i)} {
					served(key) // now cached, when there is a cache
					err := s.Set("grow", key, v)
					record(growOutcome{Key: key, I: i, Err: err})
					if err == nil {
						want[key] = v
					} else if failedAt < 0 {
						failedAt = i
					}
					served(key)
				}
			}
			// A delete that fails must leave the key served as well.
			k0 := fmt.Sprintf("g%d-k0", g)
			served(k0)
			err := s.Delete("grow", k0)
			record(growOutcome{Key: k0, Delete: true, Err: err})
			if err == nil {
				delete(want, k0)
			}
			served(k0)
			got, err := s.List("grow")
			if err != nil {
				t.Errorf("List(grow): %v", err)
				return
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("List(grow)[%s] = %.20q; want %.20q", k, got[k], v)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// TestDiskFullChild is the process of TestDiskFull. It runs only with
// OPSTATE_DISKFULL_CHILD set. It runs growWriters under a file-size limit
// and prints "ack KEY I" for a Set and "deleted KEY" for a Delete that
// returned nil, "fail KEY I KIND" for one that failed, where KIND is
// "diskfull" or "io", and the text of the first error.
func TestDiskFullChild(t *testing.T) {
	path := os.Getenv(diskFullChildEnv)
	if path == "" {
		t.Skip("run by TestDiskFull")
	}
	// No check for other writers: emptying the cache could hide a failed
	// write that was cached.
	opts := opstate.Options{SyncInterval: -1}
	if os.Getenv(diskFullCacheEnv) == "off" {
		opts.CacheBytes = -1
	}

	// The -shm file is 32 KiB from the start and must fit too.
	limit := uint64(max(fileSize(path), fileSize(path+"-wal"), 32<<10) + diskFullHeadroom)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < limit {
		t.Fatalf("hard RLIMIT_FSIZE %d is below the limit %d this test needs", rl.Max, limit)
	}
	// Beyond the limit the kernel sends SIGXFSZ, which kills the process
	// unless ignored; ignored, write(2) fails with EFBIG.
	signal.Ignore(syscall.SIGXFSZ)
	rl.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("limit %d bytes; database %d, WAL %d\n", limit, fileSize(path), fileSize(path+"-wal"))

	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { fmt.Printf("close %v\n", s.Close()) }()

	var firstErr error
	for _, o := range growWriters(t, s) {
		switch {
		case o.Err == nil && o.Delete:
			fmt.Printf("deleted %s\n", o.Key)
		case o.Err == nil:
			fmt.Printf("ack %s %d\n", o.Key, o.I)
		default:
			kind := "other"
			switch {
			case errors.Is(o.Err, opstate.ErrDiskFull):
				kind = "diskfull"
			case errors.Is(o.Err, opstate.ErrIO):
				kind = "io"
			default:
				t.Errorf("write of grow/%s over the file-size limit = %v; want ErrDiskFull or ErrIO", o.Key, o.Err)
			}
			fmt.Printf("fail %s %d %s\n", o.Key, o.I, kind)
			if firstErr == nil {
				firstErr = o.Err
				fmt.Printf("error %v\n", o.Err)
			}
		}
	}
	batches, writes := s.Batches()
	fmt.Printf("batches: %d writes in %d transactions\n", writes, batches)
	if firstErr == nil {
		t.Errorf("no write failed with the file-size limit at %d bytes; the WAL is %d bytes", limit, fileSize(path+"-wal"))
	}
}

// TestDiskFullENOSPC fills a real file system: a tmpfs of 2 MiB, on which
// write(2) fails with ENOSPC, where TestDiskFull's file-size limit gives
// EFBIG. growWriters fill it, checking that no failed write is served;
// every write that failed must have failed with ErrDiskFull (SQLite's
// SQLITE_FULL). Then, with the disk still full, the Store and a Store
// opened afresh must serve exactly the acknowledged writes; once the
// tmpfs is grown to 8 MiB, a third Store must too and accept a write, and
// PRAGMA integrity_check must say ok.
//
// SQLite reports ENOSPC otherwise in one place, which this test does not
// reach: when the WAL index (-shm) must grow (see TestDiskFullWALIndex).
func TestDiskFullENOSPC(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		dir := mountTmpfs(t, "size=2m")
		path := filepath.Join(dir, "state.db")
		opts.SyncInterval = -1 // emptying the cache could hide a failed write that was cached
		s := mustOpen(t, path, opts)
		seed, want := diskFullSeed(t, s)

		acks, fails := 0, 0
		for _, o := range growWriters(t, s) {
			switch {
			case o.Err == nil && o.Delete:
				delete(want, o.Key)
				acks++
			case o.Err == nil:
				want[o.Key] = growValue(o.I)
				acks++
			default:
				if fails == 0 {
					t.Logf("first failure: %v", o.Err)
				}
				fails++
				if !errors.Is(o.Err, opstate.ErrDiskFull) {
					t.Errorf("write of grow/%s on a full disk = %v; want ErrDiskFull", o.Key, o.Err)
				}
			}
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d writes acknowledged, %d failed; %d bytes free, WAL %d bytes", acks, fails, st.Bavail*uint64(st.Bsize), fileSize(path+"-wal"))
		if acks == 0 || fails == 0 {
			t.Fatalf("%d writes acknowledged and %d failed; want some of each", acks, fails)
		}

		wantAcknowledged(t, s, seed, want)
		if err := s.Close(); err != nil {
			t.Errorf("Close on a full disk = %v", err)
		}
		r := mustOpen(t, path, opstate.Options{CacheBytes: -1})
		wantAcknowledged(t, r, seed, want)
		if err := r.Close(); err != nil {
			t.Errorf("Close on a full disk = %v", err)
		}

		remount(t, dir, 0, "size=8m")
		r = mustOpen(t, path, opstate.Options{CacheBytes: -1})
		wantAcknowledged(t, r, seed, want)
		mustSet(t, r, "grow", "after", "space freed")
		wantGet(t, r, "grow", "after", "space freed", true)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		crashIntegrity(t, path)
	})
}

// walFrames returns how many frames the WAL file beside path holds (its
// 32-byte header, then frames of a 24-byte header and a 4 KiB page).
func walFrames(path string) int64 {
	return max(fileSize(path+"-wal")-32, 0) / (24 + 4096)
}

// TestDiskFullWALIndex fills a tmpfs at the one moment SQLite reports a
// full disk otherwise than with SQLITE_FULL: when the WAL passes 4062
// frames, the WAL index (-shm) must grow by 32 KiB, and when it cannot,
// the write fails with SQLITE_IOERR_SHMSIZE after its frames are in the
// WAL. A reader holding a snapshot keeps checkpoints from starting the
// WAL over, so that it grows that far, and the tmpfs is filled up to just
// past frame 4063's page. The write that fails must fail with ErrIO, not
// ErrDiskFull, since its frames may be read back after a restart; its
// key must keep serving the old value. Once space is freed, a Store
// opened afresh must hold every acknowledged write, the failed write's
// key either value, a write must succeed, and PRAGMA integrity_check
// must say ok.
func TestDiskFullWALIndex(t *testing.T) {
	dir := mountTmpfs(t, "size=24m")
	path := filepath.Join(dir, "state.db")
	s := mustOpen(t, path, opstate.Options{SyncInterval: -1})
	mustSet(t, s, "fill", "same", "0")

	// A read transaction's snapshot: checkpoints copy no frame past it,
	// so none completes and the WAL is never started over.
	reader, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	rtx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	var rows int
	if err := rtx.QueryRow("SELECT count(*) FROM operational_state").Scan(&rows); err != nil {
		t.Fatal(err)
	}

	const walIndexFrames = 4062 // the frames the first 32 KiB of the -shm index
	want := map[string]string{"same": "0"}
	value := strings.Repeat("v", 3000)
	for i := 0; walFrames(path) < walIndexFrames-8; i++ {
		k := fmt.Sprintf("%06d", i)
		mustSet(t, s, "fill", k, value)
		want[k] = value
	}
	// Leave room for the WAL to reach one frame past the index's first
	// 32 KiB, and two pages more: less than the index needs to grow.
	walPages := int64(32+(walIndexFrames+1)*(24+4096)+4095) / 4096
	free := (walPages - (fileSize(path+"-wal")+4095)/4096 + 2) * 4096
	fillTo(t, dir, free)

	var failed error
	failedValue := ""
	for i := 1; i < 100; i++ {
		v := fmt.Sprint(i)
		if err := s.Set("fill", "same", v); err != nil {
			failed, failedValue = err, v
			t.Logf("write at WAL frame %d: %v", walFrames(path), err)
			wantGet(t, s, "fill", "same", want["same"], true)
			break
		}
		want["same"] = v
	}
	switch {
	case failed == nil:
		t.Fatalf("no write failed with %d bytes left; WAL %d frames", free, walFrames(path))
	case walFrames(path) <= walIndexFrames:
		t.Fatalf("the write failed at WAL frame %d, before the index had to grow: %v", walFrames(path), failed)
	case errors.Is(failed, opstate.ErrDiskFull) || !errors.Is(failed, opstate.ErrIO):
		t.Errorf("write that failed to grow the WAL index = %v; want ErrIO, not ErrDiskFull", failed)
	}

	// Every connection closes, so that the next Open rebuilds the index
	// from the WAL, as after a restart.
	rtx.Rollback()
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Logf("Close on a full disk: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, path, opstate.Options{CacheBytes: -1})
	got, err := r.List("fill")
	if err != nil {
		t.Fatal(err)
	}
	if g := got["same"]; g != want["same"] && g != failedValue {
		t.Errorf("fill/same after a restart = %q; want the acknowledged %q or the failed %q", g, want["same"], failedValue)
	} else {
		t.Logf("fill/same after a restart = %q (acknowledged %q, failed %q)", g, want["same"], failedValue)
	}
	delete(got, "same")
	delete(want, "same")
	if !maps.Equal(got, want) {
		t.Errorf("List(fill) after a restart holds %d keys; want the %d acknowledged", len(got), len(want))
	}
	mustSet(t, r, "fill", "after", "space freed")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	crashIntegrity(t, path)
}

// fillTo writes a file "filler" in dir until the file system there has
// at most free bytes left.
func fillTo(t *testing.T, dir string, free int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		left := int64(st.Bavail) * st.Bsize
		if left <= free {
			return
		}
		if _, err := f.Write(page[:min(int64(len(page)), left-free)]); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

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

// damagedValue is the value of key i of the file TestDamagedFiles damages.
func damagedValue(i int) string {
	return fmt.Sprintf("value-%05d-%s", i, strings.Repeat("x", 80))
}

// TestDamagedFiles damages copies of a valid store file of about 120 pages,
// written and closed cleanly, and opens them. For damage that SQLite or a
// cheap look at the header can see, Open must fail with ErrCorrupt or
// ErrNotDatabase. For damage that only reading every page would find,
// Open may succeed; then List must fail with ErrCorrupt and each Get must
// return the key's value or ErrCorrupt, never another value or "missing".
// Either way the file must be byte for byte as it was, with no -wal or
// -shm file left beside it. Nothing is written to a damaged file once
// its damage has been seen: every write after the reads fails with
// ErrCorrupt, and a write that succeeded would change the file.
func TestDamagedFiles(t *testing.T) {
	const rows = 3000
	good := dbPath(t)
	s := mustOpen(t, good, opstate.Options{})
	mustSet(t, s, "ns", "key00000", damagedValue(0))
	db, err := sql.Open("sqlite", good)
	if err != nil {
		t.Fatal(err)
	}
	// One statement writes the rest: damagedValue in SQL.
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO operational_state
		SELECT 'ns', printf('key%05d', i), printf('value-%05d-', i) || replace(hex(zeroblob(40)), '0', 'x'),
			'2026-03-07T10:00:00.000Z', NULL
		FROM n`, rows-1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", fmt.Sprintf("key%05d", rows-1), damagedValue(rows-1), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sc := sidecars(good); len(sc) != 0 {
		t.Fatalf("a clean Close left %v beside the file", sc)
	}
	content, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.BigEndian.Uint16(content[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int(binary.BigEndian.Uint32(content[28:]))
	if pages*pageSize != len(content) || pages < 20 {
		t.Fatalf("file is %d bytes, header says %d pages of %d; want them to agree and 20 pages or more", len(content), pages, pageSize)
	}

	rng := rand.New(rand.NewPCG(1, 2)) // the same garbage every run
	garbage := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	tests := []struct {
		name   string
		damage func(b []byte) []byte
		// mayOpen says that no cheap check at Open can see the damage.
		mayOpen bool
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, false},
		{"last page cut off", func(b []byte) []byte { return b[:len(b)-pageSize] }, false},
		{"garbage pages in the middle", func(b []byte) []byte {
			mid := pages / 2 * pageSize
			garbage(b[mid : mid+4*pageSize])
			return b
		}, true},
		{"header page count doubled", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[28:], uint32(2*pages))
			return b
		}, false},
		{"schema page garbage", func(b []byte) []byte {
			garbage(b[100:pageSize])
			return b
		}, false},
		// SQLite takes a header page count smaller than the file for
		// valid and ignores the rest of the file; Open compares page
		// count × page size with the file's size when no WAL is there.
		{"header page count halved", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[28:], uint32(pages/2))
			return b
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			damaged := tt.damage(bytes.Clone(content))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := opstate.Open(path, opstate.Options{})
			switch {
			case err == nil && !tt.mayOpen:
				s.Close()
				t.Errorf("Open succeeded; want ErrCorrupt or ErrNotDatabase")
			case err == nil:
				t.Logf("Open succeeded")
				checkDamagedReads(t, s, rows)
				// The reads have seen the damage: from now on no write
				// may reach the file, whichever page it would change.
				for i := 0; i < rows; i += rows / 6 {
					key := fmt.Sprintf("key%05d", i)
					if err := s.Set("ns", key, "new"); !errors.Is(err, opstate.ErrCorrupt) {
						t.Errorf("Set(ns, %s) after the damage was seen = %v; want ErrCorrupt", key, err)
					}
				}
				if err := s.Set("other", "k", "v"); !errors.Is(err, opstate.ErrCorrupt) {
					t.Errorf("Set(other, k) after the damage was seen = %v; want ErrCorrupt", err)
				}
				if _, err := s.DeleteExpired(context.Background()); !errors.Is(err, opstate.ErrCorrupt) {
					t.Errorf("DeleteExpired after the damage was seen = %v; want ErrCorrupt", err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			case errors.Is(err, opstate.ErrCorrupt) || errors.Is(err, opstate.ErrNotDatabase):
				t.Logf("Open: %v", err)
				if !strings.HasPrefix(err.Error(), "opstate: ") {
					t.Errorf("Open = %q; want an error starting with \"opstate: \"", err)
				}
			default:
				t.Errorf("Open = %v; want ErrCorrupt or ErrNotDatabase", err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, damaged) {
				t.Errorf("file after Open: %d bytes (%v), changed: %v; want the %d bytes it had", len(got), err, !bytes.Equal(got, damaged), len(damaged))
			}
			if sc := sidecars(path); len(sc) != 0 {
				t.Errorf("Open left %v beside the file; want nothing", sc)
			}

			// With VerifyOnOpen, every kind of damage is refused at Open,
			// the file still untouched.
			if s, err := opstate.Open(path, opstate.Options{VerifyOnOpen: true}); err == nil {
				s.Close()
				t.Errorf("Open with VerifyOnOpen succeeded; want ErrCorrupt or ErrNotDatabase")
			} else if !errors.Is(err, opstate.ErrCorrupt) && !errors.Is(err, opstate.ErrNotDatabase) {
				t.Errorf("Open with VerifyOnOpen = %v; want ErrCorrupt or ErrNotDatabase", err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, damaged) {
				t.Errorf("file after Open with VerifyOnOpen changed")
			}
		})
	}
	t.Run("healthy file with VerifyOnOpen", func(t *testing.T) {
		path := dbPath(t)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := opstate.Open(path, opstate.Options{VerifyOnOpen: true})
		if err != nil {
			t.Fatalf("Open of a healthy file with VerifyOnOpen = %v", err)
		}
		defer s.Close()
		if v, err := s.Get("ns", "key00000"); err != nil || v == "" {
			t.Errorf("Get = %q, %v; want the value", v, err)
		}
	})
}

// checkDamagedReads reads the rows of a damaged file: List must fail with
// ErrCorrupt, and each Get must return the key's value or ErrCorrupt.
func checkDamagedReads(t *testing.T, s *opstate.Store, rows int) {
	t.Helper()
	if m, err := s.List("ns"); !errors.Is(err, opstate.ErrCorrupt) {
		t.Errorf("List(ns) = %d keys, %v; want ErrCorrupt", len(m), err)
	}
	corrupt := 0
	for i := range rows {
		key := fmt.Sprintf("key%05d", i)
		v, ok, err := s.Lookup("ns", key)
		switch {
		case errors.Is(err, opstate.ErrCorrupt):
			corrupt++
		case err != nil || !ok || v != damagedValue(i):
			t.Errorf("Lookup(ns, %s) = %.20q, %v, %v; want %.20q or ErrCorrupt", key, v, ok, err, damagedValue(i))
		}
	}
	t.Logf("%d of %d Gets failed with ErrCorrupt, the others returned the right value", corrupt, rows)
	if corrupt == 0 {
		t.Errorf("every Get succeeded on a damaged file; want some to fail with ErrCorrupt")
	}
}

// sidecars returns the names of the -wal, -shm and -journal files beside
// path.
func sidecars(path string) []string {
	var found []string
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); err == nil {
			found = append(found, filepath.Base(path+suffix))
		}
	}
	return found
}

// readOnlyWrites are the writes a read-only database must refuse, on s.
func readOnlyWrites(s *opstate.Store) []struct {
	name  string
	write func() error
} {
	return []struct {
		name  string
		write func() error
	}{
		{"Set", func() error { return s.Set("ns", "k", "new") }},
		{"Set of a new key", func() error { return s.Set("ns", "absent", "new") }},
		{"SetWithTTL", func() error { return s.SetWithTTL("ns", "cold", "new", time.Hour) }},
		{"Delete", func() error { return s.Delete("ns", "cold") }},
		{"DeleteNamespace", func() error { return s.DeleteNamespace("ns") }},
		{"DeleteExpired", func() error {
			_, err := s.DeleteExpired(context.Background())
			return err
		}},
	}
}

// readOnlySeed writes, through a Store it closes, what the read-only tests
// read back: "ns"/"k" = "old", "ns"/"cold" = "c", and "ns"/"expired",
// which has expired by the time of clk.Advance(time.Minute) for
// DeleteExpired to delete.
func readOnlySeed(t *testing.T, path string, clk *clock) {
	t.Helper()
	s := mustOpen(t, path, opstate.Options{Clock: clk.Now})
	mustSet(t, s, "ns", "k", "old")
	mustSet(t, s, "ns", "cold", "c")
	if err := s.SetWithTTL("ns", "expired", "e", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// readOnlyReads checks what s serves of readOnlySeed's keys once
// "expired" has expired, with "ns"/"k" = k: the keys, a missing key, List
// and Namespaces.
func readOnlyReads(t *testing.T, s *opstate.Store, k, when string) {
	t.Helper()
	for _, c := range []struct {
		key, want string
		ok        bool
	}{{"k", k, true}, {"cold", "c", true}, {"absent", "", false}, {"expired", "", false}} {
		if got, ok, err := s.Lookup("ns", c.key); err != nil || got != c.want || ok != c.ok {
			t.Errorf("%s: Lookup(ns, %s) = %q, %v, %v; want %q, %v, nil", when, c.key, got, ok, err, c.want, c.ok)
		}
	}
	if m, err := s.List("ns"); err != nil || !maps.Equal(m, map[string]string{"k": k, "cold": "c"}) {
		t.Errorf("%s: List(ns) = %v, %v; want k=%s, cold=c", when, m, err, k)
	}
	if nss, err := s.Namespaces(); err != nil || len(nss) != 1 || nss[0] != (opstate.Namespace{Name: "ns", Keys: 2}) {
		t.Errorf("%s: Namespaces() = %v, %v; want [{ns 2}]", when, nss, err)
	}
}

// TestFileSystemTurnsReadOnly makes the file system under an open Store
// read-only, as the kernel does after an error on an ext4 file system
// mounted errors=remount-ro (see ext4Mount), and checks that
//   - Set, SetWithTTL, Delete, DeleteNamespace and DeleteExpired fail with
//     ErrReadOnly;
//   - after each, the Store serves what it did before: a key it had
//     cached, one it never read, one cached as absent, List and
//     Namespaces; a Store opened now serves the same;
//   - once the file system is mounted again, the file holds every
//     acknowledged write, among them one made just before the error, and
//     nothing of the failed ones; a write succeeds; PRAGMA
//     integrity_check says ok.
//
// The Store runs with DurabilityFull: when the file system turns
// read-only, the kernel never writes the pages it held, so with
// DurabilityNormal the writes acknowledged since the last checkpoint can
// be lost, as on power loss (see doc.go's Caveats): this test's are.
func TestFileSystemTurnsReadOnly(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		m := mountExt4(t)
		path := filepath.Join(m.dir, "state.db")
		clk := newClock()
		readOnlySeed(t, path, clk)
		opts.Clock, opts.Durability = clk.Now, opstate.DurabilityFull
		s := mustOpen(t, path, opts)
		warm(t, s, "ns", "k", "absent") // "cold" stays unread
		// Acknowledged just before the error, so only in the WAL.
		const k = "acknowledged"
		mustSet(t, s, "ns", "k", k)
		mustSet(t, s, "ns", "late", "acknowledged")
		if err := s.Delete("ns", "late"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)

		m.fail(t)
		readOnlyReads(t, s, k, "read-only")
		for _, w := range readOnlyWrites(s) {
			err := w.write()
			if !errors.Is(err, opstate.ErrReadOnly) {
				t.Errorf("%s on a file system turned read-only = %v; want ErrReadOnly", w.name, err)
			}
			t.Logf("%s: %v", w.name, err)
			readOnlyReads(t, s, k, "after failed "+w.name)
		}
		o := mustOpen(t, path, opstate.Options{Clock: clk.Now})
		readOnlyReads(t, o, k, "Store opened on the read-only file system")
		if err := o.Close(); err != nil {
			t.Errorf("Close of the Store opened read-only = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Logf("Close on a file system turned read-only: %v", err)
		}

		m.mountAgain(t)
		r := mustOpen(t, path, opstate.Options{Clock: clk.Now, CacheBytes: -1})
		readOnlyReads(t, r, k, "mounted again")
		mustSet(t, r, "ns", "k", "new")
		wantGet(t, r, "ns", "k", "new", true)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		crashIntegrity(t, path)
	})
}

// persistWAL writes to the database at path through a connection that
// leaves the -wal and -shm files behind when it closes, as a crash would
// (SQLITE_FCNTL_PERSIST_WAL).
func persistWAL(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		fc, ok := dc.(interface {
			FileControlPersistWAL(string, int) (int, error)
		})
		if !ok {
			return fmt.Errorf("driver connection %T has no FileControlPersistWAL", dc)
		}
		_, err := fc.FileControlPersistWAL("main", 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(context.Background(), "UPDATE operational_state SET value = value"); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyMount opens a Store on a file system mounted read-only (a
// tmpfs, remounted read-only once the file is written and every
// connection closed), with and without the -wal and -shm files SQLite
// keeps beside the database. Where SQLite can read the file (its -shm is
// there), Open must succeed, every read serve the file's contents, and
// every write fail with ErrReadOnly, leaving the reads as they were;
// where it cannot (it would have to create the -shm, or the file), Open
// must fail with ErrReadOnly. Either way no file may change or appear.
func TestReadOnlyMount(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		opens   bool
	}{
		{"no -wal or -shm", func(t *testing.T, path string) {}, false},
		{"-wal and -shm", persistWAL, true},
		{"-wal without -shm", func(t *testing.T, path string) {
			persistWAL(t, path)
			if err := os.Remove(path + "-shm"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"no file", func(t *testing.T, path string) {
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mountTmpfs(t, "size=4m")
			path := filepath.Join(dir, "state.db")
			clk := newClock()
			readOnlySeed(t, path, clk)
			clk.Advance(time.Minute)
			tt.prepare(t, path)
			before := dirFiles(t, dir)
			remount(t, dir, syscall.MS_RDONLY, "")

			s, err := opstate.Open(path, opstate.Options{Clock: clk.Now})
			switch {
			case err == nil && !tt.opens:
				s.Close()
				t.Errorf("Open succeeded; want ErrReadOnly")
			case err == nil:
				readOnlyReads(t, s, "old", "read-only")
				for _, w := range readOnlyWrites(s) {
					err := w.write()
					if !errors.Is(err, opstate.ErrReadOnly) {
						t.Errorf("%s on a read-only mount = %v; want ErrReadOnly", w.name, err)
					}
					readOnlyReads(t, s, "old", "after failed "+w.name)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
			case tt.opens:
				t.Errorf("Open = %v; want it to succeed", err)
			case !errors.Is(err, opstate.ErrReadOnly):
				t.Errorf("Open = %v; want ErrReadOnly", err)
			default:
				t.Logf("Open: %v", err)
			}
			if after := dirFiles(t, dir); !maps.Equal(after, before) {
				t.Errorf("files after Open: %v, some changed; want %v as they were", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
			}
		})
	}
}

// dirFiles returns the name and content of every file in dir. No
// connection of this process may have them open.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}
