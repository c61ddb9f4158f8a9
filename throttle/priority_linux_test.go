package throttle

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func checkLowered(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(taskDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		// getpriority returns 20-nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			continue // the thread exited
		}
		if p != 20-niceLowest {
			t.Errorf("thread %d: getpriority = %d, want %d (nice %d)", tid, p, 20-niceLowest, niceLowest)
		}
		r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if e == 0 && r != ioprioLowest {
			t.Errorf("thread %d: ioprio = %#x, want %#x", tid, r, ioprioLowest)
		}
	}
}
