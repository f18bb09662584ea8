//go:build linux

package opstate_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"modernc.org/sqlite"

	"github.com/d8da9184/opstate"
)

// tmpfsMagic is the f_type statfs reports for a tmpfs.
const tmpfsMagic = 0x01021994

// BenchmarkSetFdatasync measures Set and Sets from 8 goroutines with
// DurabilityFull, committing with fsync and with fdatasync, on the disk
// of the temporary directory and on the tmpfs /dev/shm (skipped when it
// is missing or no tmpfs). Both sync calls run on the same Store, flipped
// between sub-benchmarks: modernc.org/sqlite reads its switch at every
// sync. The Store is filled with benchKeys keys first, so that the
// write-ahead log has reached the size it is then reused at (a commit
// overwrites frames and does not grow the file). The switch is restored
// at the end. Set OPSTATE_BENCH_FDATASYNC_FIRST=1 to run fdatasync before
// fsync, and alternate it between runs:
//
//	go test -c -o /tmp/opstate.test . && for i in 1 2 3 4 5 6; do
//	  OPSTATE_BENCH_FDATASYNC_FIRST=$((i % 2)) /tmp/opstate.test -test.run '^$' \
//	    -test.bench '^BenchmarkSetFdatasync$' -test.benchtime 2s; done > fd.txt
//	benchstat -col /sync fd.txt
func BenchmarkSetFdatasync(b *testing.B) {
	prev := sqlite.FdatasyncEnabled()
	b.Cleanup(func() { sqlite.Fdatasync(prev) })
	if _, err := sqlite.Fdatasync(false); err != nil {
		b.Skip(err)
	}
	syncs := []struct {
		name string
		on   bool
	}{{"fsync", false}, {"fdatasync", true}}
	if os.Getenv("OPSTATE_BENCH_FDATASYNC_FIRST") == "1" {
		syncs[0], syncs[1] = syncs[1], syncs[0]
	}
	for _, place := range []string{"disk", "tmpfs"} {
		b.Run("on="+place, func(b *testing.B) {
			dir := b.TempDir()
			if place == "tmpfs" {
				var st syscall.Statfs_t
				if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
					b.Skipf("/dev/shm is no tmpfs (%v)", err)
				}
				var err error
				if dir, err = os.MkdirTemp("/dev/shm", "opstate-bench-"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
			}
			s := filledFullStore(b, filepath.Join(dir, "state.db"))
			for _, w := range []string{"set", "set-8goroutines"} {
				for _, sync := range syncs {
					b.Run("op="+w+"/sync="+sync.name, func(b *testing.B) {
						if _, err := sqlite.Fdatasync(sync.on); err != nil {
							b.Fatal(err)
						}
						if w == "set" {
							b.ReportAllocs()
							b.ResetTimer()
							for i := 0; b.Loop(); i++ {
								if err := s.Set("flags", benchOrder[i%benchKeys], benchValue(i)); err != nil {
									b.Fatal(err)
								}
							}
							return
						}
						batches0, writes0 := s.Batches()
						setsFrom8Goroutines(b, func(key, value string) error { return s.Set("flags", key, value) })
						batches, writes := s.Batches()
						b.ReportMetric(float64(writes-writes0)/float64(batches-batches0), "writes/txn")
					})
				}
			}
		})
	}
}

// filledFullStore fills a store at path with benchKeys keys, with
// DurabilityNormal (fast), and opens it again with DurabilityFull, leaving
// modernc.org/sqlite's fdatasync switch to the caller. The store is closed
// at the end of the benchmark.
func filledFullStore(b *testing.B, path string) *opstate.Store {
	b.Helper()
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, Fdatasync: opstate.FdatasyncLeave})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchKeys {
		mustSet(b, s, "flags", benchKey(i), benchValue(i))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	s = mustOpen(b, path, opstate.Options{SweepInterval: -1, Durability: opstate.DurabilityFull, Fdatasync: opstate.FdatasyncLeave})
	// Commits with FULL until the log has been checkpointed and restarted
	// at least once, so that later commits overwrite it.
	for i := range 3000 {
		mustSet(b, s, "flags", benchOrder[i%benchKeys], benchValue(i))
	}
	return s
}

// BenchmarkSyncCall measures the two system calls alone, on the disk of the
// temporary directory: a 4 KiB write followed by fsync or fdatasync, at the
// end of a file that grows (as a commit that appends frames to a new
// write-ahead log) and over a block already written (as a commit to a log
// that is reused after a checkpoint). fdatasync must write the size of a
// file that grew, and so gains little there; over written blocks it
// skips the timestamps, which fsync writes through the file system's
// journal.
func BenchmarkSyncCall(b *testing.B) {
	for _, mode := range []string{"append", "overwrite"} {
		for _, call := range []string{"fsync", "fdatasync"} {
			b.Run("write="+mode+"/sync="+call, func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "file"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				const block = 4096
				page := make([]byte, block)
				if mode == "overwrite" {
					if _, err := f.Write(make([]byte, 256*block)); err != nil {
						b.Fatal(err)
					}
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				sync := syscall.Fsync
				if call == "fdatasync" {
					sync = syscall.Fdatasync
				}
				fd := int(f.Fd())
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					off := int64(i) * block
					if mode == "overwrite" {
						off = int64(i%256) * block
					}
					if _, err := f.WriteAt(page, off); err != nil {
						b.Fatal(err)
					}
					if err := sync(fd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
