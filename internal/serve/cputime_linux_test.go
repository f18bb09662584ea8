package serve_test

import (
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3

// threadTime returns the processor time the calling thread has run, to
// the nanosecond: time it spends waiting for a processor (other processes
// running) is not counted, as it is in the time of a clock on the wall.
// The caller locks its goroutine to its thread (runtime.LockOSThread).
func threadTime() time.Duration {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		panic("clock_gettime(CLOCK_THREAD_CPUTIME_ID): " + e.Error())
	}
	return time.Duration(ts.Nano())
}

// threadClock names the clock of threadTime, for messages.
const threadClock = "the thread's processor time"
