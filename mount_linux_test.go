package opstate_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs with options data (such as "size=2m") on a new
// directory and returns the directory; it is unmounted when the test ends.
// The test is skipped where this process may not mount.
func mountTmpfs(t *testing.T, data string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, data); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("skipped: mounting a tmpfs is not permitted here: %v", err)
		}
		t.Fatalf("mount tmpfs %s on %s: %v", data, dir, err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}

// remount changes the flags (syscall.MS_RDONLY, or 0 for read-write) and
// options of the file system mounted at dir.
func remount(t *testing.T, dir string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|flags, data); err != nil {
		t.Fatalf("remount %s with flags %#x, %q: %v", dir, flags, data, err)
	}
}

// unmount unmounts the file system at dir, if one is mounted there.
func unmount(t *testing.T, dir string) {
	t.Helper()
	err := syscall.Unmount(dir, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EINVAL): // EINVAL: nothing mounted there
	case errors.Is(err, syscall.EBUSY):
		t.Errorf("unmount %s: %v; detaching it", dir, err)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	default:
		t.Errorf("unmount %s: %v", dir, err)
	}
}
