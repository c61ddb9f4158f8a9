package throttle

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ioprio_set(2): who = IOPRIO_WHO_PROCESS (a thread id on Linux), the
// best-effort class at its lowest level (7). Not the idle class: that can
// starve the agent outright on a busy flash, and the throttle already
// bounds what the agent takes.
const (
	ioprioWhoProcess = 1
	ioprioClassBE    = 2
	ioprioLowest     = ioprioClassBE<<13 | 7
	niceLowest       = 19
)

// setpriority and ioprioSet are the syscall seams.
var (
	setpriority = unix.Setpriority
	ioprioSet   = func(tid int) error {
		_, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioLowest)
		if e != 0 {
			return e
		}
		return nil
	}
	taskDir = "/proc/self/task"
)

// LowerPriority sets every thread of this process to nice 19 and the
// lowest best-effort I/O priority. Both are per thread on Linux; threads
// the Go runtime starts later inherit them from the thread that creates
// them. Secondary to the throttle (see the package doc).
func LowerPriority() error {
	ents, err := os.ReadDir(taskDir)
	if err != nil {
		return fmt.Errorf("throttle: priority: %w", err)
	}
	var errs []error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := setpriority(unix.PRIO_PROCESS, tid, niceLowest); err != nil {
			errs = append(errs, fmt.Errorf("thread %d nice: %w", tid, err))
		}
		if err := ioprioSet(tid); err != nil {
			errs = append(errs, fmt.Errorf("thread %d ioprio: %w", tid, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("throttle: priority: %w", err)
	}
	return nil
}
