package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// cpuTime is the CPU time (user + system) that pid and its descendants have used so far: the sum over
// their threads of the first field of /proc/PID/task/TID/schedstat (time on a CPU, in nanoseconds).
// nginx's master and worker and node's helper threads are counted like a Go server's threads.
//
// A thread that exits between two readings takes its time with it; the servers measured here keep
// their threads (a Go runtime's Ms, nginx's one worker, node's pool), so a difference of two readings
// is the CPU the process spent in between.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	var total time.Duration
	for _, p := range append([]int{pid}, descendants(pid)...) {
		dir := fmt.Sprintf("/proc/%d/task", p)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
			if err != nil {
				continue
			}
			f, _, _ := bytes.Cut(b, []byte(" "))
			ns, err := strconv.ParseInt(string(f), 10, 64)
			if err == nil {
				total += time.Duration(ns)
			}
		}
	}
	return total
}

// cpuMeter reads the CPU time of a target's processes (and of the upstream's) around one measured run.
type cpuMeter struct {
	pid, upPID int
	t0, up0    time.Duration
}

func startCPU(t Target, upPID int) *cpuMeter {
	m := &cpuMeter{pid: t.PID, upPID: upPID}
	if upPID == t.PID {
		m.upPID = 0 // direct: the target is the upstream
	}
	m.t0, m.up0 = cpuTime(m.pid), cpuTime(m.upPID)
	return m
}

// perRequest returns the target's and the upstream's CPU microseconds per request over the run.
func (m *cpuMeter) perRequest(requests int64) (target, upstream float64) {
	if requests <= 0 || m.pid <= 0 {
		return 0, 0
	}
	target = float64(cpuTime(m.pid)-m.t0) / 1e3 / float64(requests)
	if m.upPID > 0 {
		upstream = float64(cpuTime(m.upPID)-m.up0) / 1e3 / float64(requests)
	}
	return target, upstream
}
