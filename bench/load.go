package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time used so far by the whole machine and by this
// process, to tell how much of the machine other processes took during a
// run: their load makes the parallel and concurrent rows noisy.
type cpuSample struct {
	at      time.Time
	machine time.Duration // busy time of all CPUs, from /proc/stat; -1 if unknown
	self    time.Duration
}

// clockTick is USER_HZ, the unit of /proc/stat, which Linux fixes at 100.
const clockTick = 10 * time.Millisecond

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), machine: -1}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait are busy.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s
		}
		busy += n
	}
	s.machine = time.Duration(busy) * clockTick
	return s
}

// othersCPUs returns how many CPUs other processes kept busy on average
// between a and b, or -1 if unknown.
func othersCPUs(a, b cpuSample) float64 {
	wall := b.at.Sub(a.at)
	if a.machine < 0 || b.machine < 0 || wall <= 0 {
		return -1
	}
	others := (b.machine - a.machine) - (b.self - a.self)
	return max(float64(others)/float64(wall), 0)
}
