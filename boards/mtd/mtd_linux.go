package mtd

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// chardev is /dev/mtdN through the kernel's mtdchar ioctls.
type chardev struct{ f *os.File }

// openDevice opens a /dev/mtdN character device. A package variable so tests
// of code above the driver can replace it (STYLE rule 8).
var openDevice = func(path string, readOnly bool) (Device, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	return &chardev{f: f}, nil
}

// ioctl is the leaf syscall seam.
var ioctl = func(fd uintptr, req uint, arg unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

func (d *chardev) Info() (Info, error) {
	var mi unix.MtdInfo
	if _, err := ioctl(d.f.Fd(), unix.MEMGETINFO, unsafe.Pointer(&mi)); err != nil {
		return Info{}, fmt.Errorf("MEMGETINFO: %w", err)
	}
	return Info{
		Type:      Type(mi.Type),
		Size:      int64(mi.Size),
		EraseSize: int64(mi.Erasesize),
		WriteSize: int64(mi.Writesize),
		OOBSize:   int64(mi.Oobsize),
	}, nil
}

func (d *chardev) ReadAt(p []byte, off int64) (int, error)  { return d.f.ReadAt(p, off) }
func (d *chardev) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

func (d *chardev) Erase(off, n int64) error {
	ei := unix.EraseInfo64{Start: uint64(off), Length: uint64(n)}
	if _, err := ioctl(d.f.Fd(), unix.MEMERASE64, unsafe.Pointer(&ei)); err != nil {
		return fmt.Errorf("MEMERASE64: %w", err)
	}
	return nil
}

func (d *chardev) IsBad(off int64) (bool, error) {
	o := off
	r, err := ioctl(d.f.Fd(), unix.MEMGETBADBLOCK, unsafe.Pointer(&o))
	if err != nil {
		return false, fmt.Errorf("MEMGETBADBLOCK: %w", err)
	}
	return r > 0, nil
}

func (d *chardev) MarkBad(off int64) error {
	o := off
	if _, err := ioctl(d.f.Fd(), unix.MEMSETBADBLOCK, unsafe.Pointer(&o)); err != nil {
		return fmt.Errorf("MEMSETBADBLOCK: %w", err)
	}
	return nil
}

func (d *chardev) ECCStats() (ECCStats, error) {
	var st unix.MtdEccStats
	if _, err := ioctl(d.f.Fd(), unix.ECCGETSTATS, unsafe.Pointer(&st)); err != nil {
		return ECCStats{}, fmt.Errorf("ECCGETSTATS: %w", err)
	}
	return ECCStats{Corrected: st.Corrected, Failed: st.Failed, BadBlocks: st.Badblocks}, nil
}

var _ ECCStater = (*chardev)(nil)

func (d *chardev) Close() error { return d.f.Close() }
