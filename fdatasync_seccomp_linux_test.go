//go:build linux && (amd64 || arm64)

package opstate_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/d8da9184/opstate"
)

// sockFilter and sockFprog are the kernel's struct sock_filter and
// struct sock_fprog, a classic BPF program for seccomp.
type sockFilter struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

type sockFprog struct {
	len    uint16
	filter *sockFilter
}

// denyFdatasync has every thread of the process, and every thread it
// starts later, fail fdatasync(2) with EPERM, as a seccomp allowlist
// without it would; every other system call is allowed.
func denyFdatasync() error {
	sysSeccomp := map[string]uintptr{"amd64": 317, "arm64": 277}[runtime.GOARCH]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const prSetNoNewPrivs = 38 // which a filter needs without CAP_SYS_ADMIN; TSYNC gives it to every thread
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	filter := []sockFilter{
		{0x20, 0, 0, 0},                                  // BPF_LD|BPF_W|BPF_ABS: the system call's number
		{0x15, 0, 1, syscall.SYS_FDATASYNC},              // BPF_JMP|BPF_JEQ|BPF_K: fdatasync?
		{0x06, 0, 0, 0x00050000 | uint32(syscall.EPERM)}, // BPF_RET: SECCOMP_RET_ERRNO | EPERM
		{0x06, 0, 0, 0x7fff0000},                         // BPF_RET: SECCOMP_RET_ALLOW
	}
	prog := sockFprog{len: uint16(len(filter)), filter: &filter[0]}
	const setModeFilter, filterFlagTSync = 1, 1
	r, _, e := syscall.RawSyscall(sysSeccomp, setModeFilter, filterFlagTSync, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not take the filter", r)
	}
	return nil
}

// Environment of the child process of TestFdatasyncSystemCall.
const fdatasyncModeEnv = "OPSTATE_FDATASYNC_MODE" // "on" or "leave"

// TestFdatasyncSystemCall checks the system call a Store's commits make,
// in a child process where fdatasync(2) fails with EPERM (a seccomp
// filter): with DurabilityFull and FdatasyncOn the Store commits with
// fdatasync, so that Open or the first Set fails with ErrIO; with the
// default, FdatasyncLeave, it commits with fsync, and a Set succeeds,
// while a plain fdatasync of the child's fails (the filter is in force).
// This is also what an application under such a filter meets with
// FdatasyncOn.
func TestFdatasyncSystemCall(t *testing.T) {
	for _, c := range []struct {
		mode string
		want string // the child's last line
	}{
		{"on", "ErrIO"},
		{"leave", "ok"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			cmd := childCommand(t, "fdatasync-denied", fdatasyncModeEnv+"="+c.mode, fdatasyncDirEnv+"="+t.TempDir())
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if lines[0] == "skip" {
				t.Skip(strings.Join(lines[1:], "\n"))
			}
			if got := lines[len(lines)-1]; got != c.want {
				t.Errorf("with fdatasync denied and Fdatasync %s, the child said %q; want %q\n%s", c.mode, out, c.want, stderr.String())
			}
		})
	}
}

func init() { childRoles["fdatasync-denied"] = fdatasyncDeniedChild }

// fdatasyncDeniedChild plays TestFdatasyncSystemCall's child: it denies
// itself fdatasync, checks that the denial is in force, then opens a Store
// with DurabilityFull and sets a key, and prints "ok", "ErrIO" for an
// error matching ErrIO, or the error.
func fdatasyncDeniedChild() int {
	dir := os.Getenv(fdatasyncDirEnv)
	if err := denyFdatasync(); err != nil {
		fmt.Printf("skip\n%v\n", err)
		return 0
	}
	f, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if err := syscall.Fdatasync(int(f.Fd())); !errors.Is(err, syscall.EPERM) {
		fmt.Fprintf(os.Stderr, "fdatasync with the filter = %v; want EPERM\n", err)
		return 1
	}
	mode := map[string]opstate.Fdatasync{"on": opstate.FdatasyncOn, "leave": opstate.FdatasyncLeave}[os.Getenv(fdatasyncModeEnv)]
	s, err := opstate.Open(filepath.Join(dir, "state.db"), opstate.Options{Durability: opstate.DurabilityFull, Fdatasync: mode})
	if err == nil {
		err = s.Set("ns", "k", "v")
		s.Close()
	}
	switch {
	case err == nil:
		fmt.Println("ok")
	case errors.Is(err, opstate.ErrIO):
		fmt.Println("ErrIO")
	default:
		fmt.Println(err)
	}
	return 0
}
