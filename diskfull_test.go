//go:build linux

package opstate_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/d8da9184/opstate"
)

// Environment of the disk-full child process; each is set only in the
// child.
const (
	diskFullChildEnv = "OPSTATE_DISKFULL_CHILD" // database path
	diskFullCacheEnv = "OPSTATE_DISKFULL_CACHE" // "off": the child's Store has no cache
)

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

// TestDiskFull runs a child process (diskFullChild) whose file-size
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

		env := []string{diskFullChildEnv + "=" + path}
		if opts.CacheBytes < 0 {
			env = append(env, diskFullCacheEnv+"=off")
		}
		cmd := childCommand(t, "diskfull", env...)
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
// the key stored, and so does List once the writer is done. It reports
// what goes wrong with errorf.
func growWriters(errorf func(format string, args ...any), s *opstate.Store) []growOutcome {
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
				if err := checkLookup(s, "grow", key, old, ok); err != nil {
					errorf("%v", err)
				}
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
				errorf("List(grow): %v", err)
				return
			}
			for k, v := range want {
				if got[k] != v {
					errorf("List(grow)[%s] = %.20q; want %.20q", k, got[k], v)
				}
			}
		})
	}
	wg.Wait()
	return out
}

func init() { childRoles["diskfull"] = diskFullChild }

// diskFullChild is the process of TestDiskFull, on the file named by
// diskFullChildEnv. It runs growWriters under a file-size limit and prints
// "ack KEY I" for a Set and "deleted KEY" for a Delete that returned nil,
// "fail KEY I KIND" for one that failed, where KIND is "diskfull" or "io",
// and the text of the first error. It exits with status 1 if a check
// failed.
func diskFullChild() int {
	var c childChecks
	diskFullWrites(c.Errorf, os.Getenv(diskFullChildEnv))
	return c.status()
}

// diskFullWrites is diskFullChild's work on the file at path, reporting
// failed checks with errorf.
func diskFullWrites(errorf func(format string, args ...any), path string) {
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
		errorf("%v", err)
		return
	}
	if rl.Max < limit {
		errorf("hard RLIMIT_FSIZE %d is below the limit %d this test needs", rl.Max, limit)
		return
	}
	// Beyond the limit the kernel sends SIGXFSZ, which kills the process
	// unless ignored; ignored, write(2) fails with EFBIG.
	signal.Ignore(syscall.SIGXFSZ)
	rl.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil {
		errorf("%v", err)
		return
	}
	fmt.Printf("limit %d bytes; database %d, WAL %d\n", limit, fileSize(path), fileSize(path+"-wal"))

	s, err := opstate.Open(path, opts)
	if err != nil {
		errorf("Open: %v", err)
		return
	}
	defer func() { fmt.Printf("close %v\n", s.Close()) }()

	var firstErr error
	for _, o := range growWriters(errorf, s) {
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
				errorf("write of grow/%s over the file-size limit = %v; want ErrDiskFull or ErrIO", o.Key, o.Err)
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
		errorf("no write failed with the file-size limit at %d bytes; the WAL is %d bytes", limit, fileSize(path+"-wal"))
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
		for _, o := range growWriters(t.Errorf, s) {
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
