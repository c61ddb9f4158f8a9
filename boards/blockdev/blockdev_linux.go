package blockdev

import (
	"os"

	"golang.org/x/sys/unix"
)

// openFile opens a block device O_SYNC and asks its logical sector size
// (BLKSSZGET; 0 when the node is not a block device, e.g. a file in tests).
var openFile = func(path string, readOnly bool) (File, int64, error) {
	flag := os.O_RDWR | os.O_SYNC
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, err
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		ss = 0
	}
	return f, int64(ss), nil
}
