//go:build unix

package persist

import (
	"errors"
	"io/fs"
	"syscall"
)

// hardLinks returns the number of names fi's file has, or 1 when the
// system does not say.
func hardLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// mknodRegular creates an empty regular file at path with mode perm (less
// the umask) without opening it, or fails with fs.ErrExist if something is
// there. Where the system or file system does not make regular files this
// way, it fails with errors.ErrUnsupported.
func mknodRegular(path string, perm uint32) error {
	err := syscall.Mknod(path, syscall.S_IFREG|perm, 0)
	switch err {
	case nil:
		return nil
	case syscall.EEXIST:
		return fs.ErrExist
	case syscall.EPERM, syscall.EINVAL, syscall.ENOSYS, syscall.EOPNOTSUPP:
		return errors.ErrUnsupported // macOS, for one, makes only FIFOs and devices this way
	}
	return &fs.PathError{Op: "mknod", Path: path, Err: err}
}
