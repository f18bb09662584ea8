package persist

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The checks of foreign.go, from /proc/self/fd and /proc/self/fdinfo. They
// never open the database or its -wal or -shm: stat(2) of
// /proc/self/fd/N follows the descriptor to its file without opening it,
// and what is read is procfs' own text about the descriptor.
const (
	procFD     = "/proc/self/fd/"
	procFDInfo = "/proc/self/fdinfo/"
	// shmDMS is the byte of the -shm on which every process that uses the
	// WAL index holds a read lock (UNIX_SHM_DMS in SQLite's os_unix.c:
	// 120, where the eight lock bytes begin, plus 8). A copy of SQLite
	// that finds no other process holding it takes itself for the first
	// user, and truncates the -shm.
	shmDMS = 128
)

// fileID names a file: its device and inode.
type fileID struct{ dev, ino uint64 }

// statID returns the fileID of what path names, symbolic links followed,
// and its number of links.
func statID(path string) (fileID, uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, 0, err
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, uint64(st.Nlink), nil
}

// sidecars is what a DB watches: the -shm and -wal its connections use, and
// SQLite's one descriptor of the -shm. Its fields other than those under
// mu are set by openSidecars and read only after.
type sidecars struct {
	path     string // the database file, absolute
	real     string // path with symbolic links resolved, as /proc names files
	dev      uint64 // the device of the database file and of its sidecars
	shm, wal fileID // the files at path-shm and path-wal when the DB opened
	shmFD    string // SQLite's descriptor of the -shm, as named in /proc/self/fd

	// mu guards info and buf. info is this package's descriptor of
	// /proc/self/fdinfo/shmFD (procfs' text about SQLite's descriptor, not
	// the -shm), opened when that descriptor held the lock on shmDMS at
	// Open, as it always does unless the -shm is read-only to this
	// process; -1 otherwise, and once closed. Reading it again from its
	// start renders the text anew.
	mu   sync.Mutex
	info int
	buf  []byte
}

// openSidecars checks the files of the database at path, whose connections
// have just opened it, for another SQLite library, and returns what to
// watch from then on, or what it found. It returns neither where there is
// nothing to watch: no /proc/self/fd, or no -shm (on a read-only file
// system without one, SQLite keeps the WAL index in memory).
func openSidecars(path string) (*sidecars, string) {
	dbID, _, err := statID(path)
	if err != nil {
		return nil, ""
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	sc := &sidecars{path: path, real: real, dev: dbID.dev, info: -1}
	sc.shm, _, _ = statID(path + "-shm")
	sc.wal, _, _ = statID(path + "-wal")
	fds, err := sc.scan()
	if err != nil {
		return nil, "" // no /proc/self/fd
	}
	if f := fds.finding(sc); f != "" {
		return nil, f
	}
	switch {
	case sc.shm.ino == 0:
		return nil, ""
	case len(fds.shm) == 0:
		return nil, fmt.Sprintf("%s-shm is not the file this process's SQLite uses", path)
	case sc.wal.ino != 0 && fds.wal == 0:
		return nil, fmt.Sprintf("%s-wal is not the file this process's SQLite uses", path)
	}
	sc.shmFD = fds.shm[0]
	info, err := syscall.Open(procFDInfo+sc.shmFD, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return sc, ""
	}
	sc.info, sc.buf = info, make([]byte, 4096)
	text, ok := sc.readInfoLocked()
	switch flags, fok := fdinfoFlags(text); {
	case !ok || !fok || flags&syscall.O_ACCMODE != syscall.O_RDWR:
		sc.close() // a read-only -shm: SQLite holds no lock on it
	case !locksByte(text, shmDMS):
		sc.close()
		return nil, sc.unlocked()
	}
	return sc, ""
}

// readInfoLocked reads the fdinfo text of SQLite's descriptor of the -shm;
// sc.mu is held, or sc is not yet shared.
func (sc *sidecars) readInfoLocked() ([]byte, bool) {
	if sc.info < 0 {
		return nil, false
	}
	n, err := syscall.Pread(sc.info, sc.buf, 0)
	if err != nil || n <= 0 {
		return nil, false
	}
	return sc.buf[:n], true
}

// close closes the fdinfo descriptor.
func (sc *sidecars) close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.info >= 0 {
		syscall.Close(sc.info)
		sc.info = -1
	}
}

// lockCheck reads whether SQLite's descriptor of the -shm still holds the
// lock on shmDMS, which another library's open of the -shm takes over and
// its close releases: one read of procfs, cheap enough to follow every
// commit. It returns what it finds, or "".
func (sc *sidecars) lockCheck() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	text, ok := sc.readInfoLocked()
	if !ok {
		return "" // not watched, or closed by DB.Close
	}
	if ino, ok := fdinfoIno(text); ok && ino != sc.shm.ino || !locksByte(text, shmDMS) {
		return sc.unlocked()
	}
	return ""
}

// quick runs the checks whose cost does not grow with the descriptors of
// the process: SQLite's descriptor of the -shm still names it and holds its
// lock, and the -shm and -wal at the path are still the files it uses. It
// returns what it finds, or "".
func (sc *sidecars) quick() string {
	if id, _, err := statID(procFD + sc.shmFD); err != nil || id != sc.shm {
		return fmt.Sprintf("this process's SQLite no longer has %s-shm open", sc.path)
	}
	if f := sc.pathCheck(); f != "" {
		return f
	}
	return sc.lockCheck()
}

// pathCheck checks that the -shm and -wal at the path are still the files
// SQLite uses, with a stat each, and returns what it finds, or "".
func (sc *sidecars) pathCheck() string {
	for _, f := range [...]struct {
		suffix string
		id     fileID
	}{{"-shm", sc.shm}, {"-wal", sc.wal}} {
		if f.id.ino == 0 {
			continue
		}
		if id, _, err := statID(sc.path + f.suffix); err != nil || id != f.id {
			return fmt.Sprintf("%s%s was deleted or replaced while this process's SQLite used it", sc.path, f.suffix)
		}
	}
	return ""
}

// full counts the descriptors of the -shm and looks for deleted sidecars
// held open, and returns what it finds, or "".
func (sc *sidecars) full() string {
	fds, err := sc.scan()
	if err != nil {
		return ""
	}
	return fds.finding(sc)
}

func (sc *sidecars) unlocked() string {
	return fmt.Sprintf("the lock this process's SQLite holds on %s-shm was taken over or released by another descriptor of the file", sc.path)
}

// descriptors is what sidecars.scan found in /proc/self/fd.
type descriptors struct {
	shm  []string // the descriptors of the -shm
	wal  int      // how many descriptors the -wal has
	dead []string // "-wal" or "-shm" for each descriptor of a deleted one of this database's
}

// finding returns what fds tell of another library, or "".
func (fds descriptors) finding(sc *sidecars) string {
	switch {
	case len(fds.dead) > 0:
		return fmt.Sprintf("%s%s, deleted, is still open in this process", sc.path, fds.dead[0])
	case len(fds.shm) > 1:
		return fmt.Sprintf("%d descriptors of %s-shm are open in this process, where SQLite opens it once", len(fds.shm), sc.path)
	}
	return ""
}

// scan looks at every descriptor of the process. Its cost grows with
// their number (BenchmarkForeignCheck).
func (sc *sidecars) scan() (descriptors, error) {
	var fds descriptors
	d, err := os.Open(procFD)
	if err != nil {
		return fds, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fds, err
	}
	var st syscall.Stat_t
	for _, name := range names {
		p := procFD + name
		if syscall.Stat(p, &st) != nil {
			continue // closed meanwhile, or not a file (a socket's stat works; an anonymous inode's too)
		}
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		switch {
		case sc.shm.ino != 0 && id == sc.shm:
			fds.shm = append(fds.shm, name)
		case sc.wal.ino != 0 && id == sc.wal:
			fds.wal++
		case st.Nlink == 0 && id.dev == sc.dev:
			target, err := os.Readlink(p)
			if err != nil {
				continue
			}
			for _, suffix := range []string{"-wal", "-shm"} {
				if target == sc.real+suffix+" (deleted)" {
					fds.dead = append(fds.dead, suffix)
				}
			}
		}
	}
	return fds, nil
}

// The parsers below read the /proc/self/fdinfo text of a descriptor, as
// Linux writes it:
//
//	pos:	0
//	flags:	02500002
//	mnt_id:	26
//	ino:	9985254
//	lock:	1: POSIX  ADVISORY  READ 17580 fe:00:9985254 128 128
//
// (a lock's end may be EOF). They allocate nothing: one runs after every
// commit.

// fdinfoField returns the value of the first line that begins with key.
func fdinfoField(info []byte, key string) []byte {
	for line := range bytes.Lines(info) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// fdinfoIno returns the inode of the descriptor's file.
func fdinfoIno(info []byte) (uint64, bool) {
	return parseUint(fdinfoField(info, "ino:"), 10)
}

// fdinfoFlags returns the descriptor's open flags.
func fdinfoFlags(info []byte) (uint64, bool) {
	return parseUint(fdinfoField(info, "flags:"), 8)
}

// locksByte reports whether the text lists a POSIX or OFD lock taken
// through the descriptor that covers byte off.
func locksByte(info []byte, off uint64) bool {
	for line := range bytes.Lines(info) {
		rest, ok := bytes.CutPrefix(line, []byte("lock:"))
		if !ok || !bytes.Contains(rest, []byte(" POSIX ")) && !bytes.Contains(rest, []byte(" OFDLCK ")) {
			continue
		}
		rest = bytes.TrimSpace(rest)
		i := bytes.LastIndexByte(rest, ' ')
		j := bytes.LastIndexByte(rest[:max(i, 0)], ' ')
		if j < 0 {
			continue
		}
		start, ok := parseUint(rest[j+1:i], 10)
		if !ok || start > off {
			continue
		}
		if end := rest[i+1:]; string(end) == "EOF" {
			return true
		} else if n, ok := parseUint(end, 10); ok && n >= off {
			return true
		}
	}
	return false
}

// parseUint parses b, digits of base 8 or 10 alone.
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		d := uint64(c) - '0'
		if c < '0' || d >= base {
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}
