package persist

import (
	"path/filepath"
	"syscall"
)

const (
	stRdonly = 1                              // ST_RDONLY in statfs(2)'s f_flags
	oTmpfile = 0x400000 | syscall.O_DIRECTORY // O_TMPFILE, which package syscall lacks on most architectures
	wOK      = 2                              // W_OK for access(2)
)

// readOnlyCause says why the database at path cannot be written, if the
// file system or the files' permissions tell: "read-only file system", or
// which of the database's files (or its directory) this process may not
// write. It returns "" when it finds no such cause.
//
// It never opens the database or its -wal, -shm or -journal (closing a
// descriptor of one would drop the process's locks on it): statfs(2) and
// access(2) look at paths, and the one file it creates is an unnamed one
// (O_TMPFILE), gone when closed, because a file system that the kernel
// stopped writing to after an error (ext4 mounted errors=remount-ro, as
// TestFileSystemTurnsReadOnly makes one) can still say it is writable to
// statfs and access, yet refuse to create a file with EROFS.
func readOnlyCause(path string) string {
	const rofs = "read-only file system"
	dir := filepath.Dir(path)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && st.Flags&stRdonly != 0 {
		return rofs
	}
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o600)
	if err == nil {
		syscall.Close(fd)
	} else if err == syscall.EROFS {
		return rofs
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		switch syscall.Access(f, wOK) {
		case syscall.EROFS:
			return rofs
		case syscall.EACCES:
			return filepath.Base(f) + " is not writable by this process"
		}
	}
	if syscall.Access(dir, wOK) == syscall.EACCES {
		return "its directory is not writable by this process"
	}
	return ""
}
