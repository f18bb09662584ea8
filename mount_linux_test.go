package opstate_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// ext4Mount is an ext4 file system in a 16 MiB image on a loop device,
// mounted with errors=remount-ro: after an error, the kernel refuses every
// write to it, while files stay open. It is the one way a test can make a
// file system read-only under an open Store: the kernel refuses to remount
// one read-only (EBUSY) while a file on it is open for writing, as
// SQLite's are.
type ext4Mount struct {
	dir string // where it is mounted
	dev string // the loop device, /dev/loopN
}

// mountExt4 makes, attaches and mounts an ext4Mount, and undoes it all
// when the test ends. The test is skipped where this process may not (not
// root, no mkfs.ext4 or losetup, no loop device).
func mountExt4(t *testing.T) *ext4Mount {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: making an ext4 file system on a loop device needs root")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not found (Debian package e2fsprogs, util-linux): %v", tool, err)
		}
	}
	img := filepath.Join(t.TempDir(), "ext4.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("skipped: no loop device to attach the image to: losetup: %v: %s", err, out)
	}
	m := &ext4Mount{dir: filepath.Join(t.TempDir(), "ext4"), dev: strings.TrimSpace(string(out))}
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", m.dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", m.dev, err, out)
		}
	})
	if !strings.HasPrefix(filepath.Base(m.dev), "loop") {
		t.Fatalf("losetup attached the image to %q; want a /dev/loopN", m.dev)
	}
	if err := os.Mkdir(m.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m.mount(t)
	t.Cleanup(func() { unmount(t, m.dir) })
	if _, err := os.Stat(m.trigger()); err != nil {
		t.Skipf("skipped: this kernel cannot be made to record an ext4 error: %v", err)
	}
	return m
}

func (m *ext4Mount) mount(t *testing.T) {
	t.Helper()
	if err := syscall.Mount(m.dev, m.dir, "ext4", syscall.MS_NOSUID|syscall.MS_NODEV, "errors=remount-ro"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("skipped: mounting ext4 is not permitted here: %v", err)
		}
		t.Fatalf("mount %s on %s: %v", m.dev, m.dir, err)
	}
}

// trigger is the sysfs file that makes the kernel record an error on the
// file system, as if it had found damage.
func (m *ext4Mount) trigger() string {
	return filepath.Join("/sys/fs/ext4", filepath.Base(m.dev), "trigger_fs_error")
}

// fail makes the kernel record an error on the file system, which then
// refuses every write (errors=remount-ro).
func (m *ext4Mount) fail(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(m.trigger(), []byte("opstate test: turning read-only"), 0); err != nil {
		t.Fatalf("trigger an ext4 error on %s: %v", m.dev, err)
	}
}

// mountAgain unmounts the file system and mounts it again, read-write.
func (m *ext4Mount) mountAgain(t *testing.T) {
	t.Helper()
	if err := syscall.Unmount(m.dir, 0); err != nil {
		t.Fatalf("unmount %s: %v", m.dir, err)
	}
	m.mount(t)
}

// bindMount mounts the file or directory src on dst, which must exist and
// be of the same kind, and unmounts it when the test ends. The test is
// skipped where this process may not mount.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: a bind mount needs root")
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("skipped: bind mounts are not permitted here: %v", err)
		}
		t.Fatalf("bind mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unmount(t, dst) })
}
