//go:build !linux

package serve_test

import "time"

// clockStart is the origin of threadTime.
var clockStart = time.Now()

// threadTime returns the time on the wall since clockStart: without Linux's
// clock of a thread's processor time, time spent waiting for a processor
// is counted too.
func threadTime() time.Duration { return time.Since(clockStart) }

// threadClock names the clock of threadTime, for messages.
const threadClock = "the wall clock"
