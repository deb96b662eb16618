//go:build unix

package failover

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system CPU time, for benchmarks: steadier than wall time on a shared
// machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
