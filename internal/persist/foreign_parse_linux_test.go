package persist

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestFdinfoParse reads the lines of /proc/self/fdinfo that the watcher
// relies on, as Linux writes them.
func TestFdinfoParse(t *testing.T) {
	const head = "pos:\t0\nflags:\t02500002\nmnt_id:\t26\nino:\t9985254\n"
	for _, tt := range []struct {
		name   string
		info   string
		locked bool
	}{
		{"no lock", head, false},
		{"read lock on 128", head + "lock:\t1: POSIX  ADVISORY  READ 17580 fe:00:9985254 128 128\n", true},
		{"merged with a read mark", head + "lock:\t1: POSIX  ADVISORY  READ 17580 fe:00:9985254 127 128\n", true},
		{"to the end", head + "lock:\t1: POSIX  ADVISORY  WRITE 17580 fe:00:9985254 100 EOF\n", true},
		{"OFD lock", head + "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:9985254 128 128\n", true},
		{"other bytes", head + "lock:\t1: POSIX  ADVISORY  WRITE 17580 fe:00:9985254 120 120\nlock:\t2: POSIX  ADVISORY  READ 17580 fe:00:9985254 123 127\n", false},
		{"after 128", head + "lock:\t1: POSIX  ADVISORY  READ 17580 fe:00:9985254 129 140\n", false},
		{"flock", head + "lock:\t1: FLOCK  ADVISORY  WRITE 17580 fe:00:9985254 0 EOF\n", false},
		{"second of several", head + "lock:\t1: POSIX  ADVISORY  WRITE 17580 fe:00:9985254 120 120\nlock:\t2: POSIX  ADVISORY  READ 17580 fe:00:9985254 128 128\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := locksByte([]byte(tt.info), shmDMS); got != tt.locked {
				t.Errorf("locksByte(%q, 128) = %v; want %v", tt.info, got, tt.locked)
			}
			if flags, ok := fdinfoFlags([]byte(tt.info)); !ok || flags != 0o2500002 {
				t.Errorf("fdinfoFlags = %#o, %v; want 02500002, true", flags, ok)
			}
			if ino, ok := fdinfoIno([]byte(tt.info)); !ok || ino != 9985254 {
				t.Errorf("fdinfoIno = %d, %v; want 9985254, true", ino, ok)
			}
		})
	}
}

// BenchmarkForeignCheck measures the checks of the watcher, with the
// process holding about fds descriptors: quick (every checkEvery while the
// DB writes), lock (after every commit) and full (the count of
// descriptors, whose cost grows with their number).
func BenchmarkForeignCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	db, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Apply(b.Context(), 0, []Write{{Kind: Put, Namespace: "ns", Key: "k", Value: "v"}}); err != nil {
		b.Fatal(err)
	}
	sc := db.guard.sc
	if sc == nil {
		b.Fatal("nothing watched")
	}
	var extra []*os.File
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	for _, fds := range []int{10, 100, 1000} {
		names, _ := os.ReadDir(procFD)
		for n := len(names); n < fds; n++ {
			f, err := os.Create(filepath.Join(b.TempDir(), fmt.Sprint(len(extra))))
			if err != nil {
				b.Fatal(err)
			}
			extra = append(extra, f)
		}
		for _, check := range []struct {
			name string
			f    func() string
		}{{"quick", sc.quick}, {"lock", sc.lockCheck}, {"full", sc.full}} {
			b.Run(fmt.Sprintf("fds=%d/%s", fds, check.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if f := check.f(); f != "" {
						b.Fatal(f)
					}
				}
			})
		}
	}
}
