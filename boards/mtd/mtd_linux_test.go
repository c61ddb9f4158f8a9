package mtd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestChardevIoctls checks the Linux glue through the leaf ioctl seam: the
// request codes, and what goes into and comes out of the kernel's structs.
func TestChardevIoctls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mtd0")
	if err := os.WriteFile(path, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := openDevice(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var calls []uint
	var erased unix.EraseInfo64
	var badArg int64
	old := ioctl
	t.Cleanup(func() { ioctl = old })
	ioctl = func(fd uintptr, req uint, arg unsafe.Pointer) (uintptr, error) {
		calls = append(calls, req)
		switch req {
		case unix.MEMGETINFO:
			*(*unix.MtdInfo)(arg) = unix.MtdInfo{Type: unix.MTD_NANDFLASH, Size: 1 << 20, Erasesize: 128 << 10, Writesize: 2048, Oobsize: 64}
		case unix.MEMERASE64:
			erased = *(*unix.EraseInfo64)(arg)
		case unix.MEMGETBADBLOCK:
			badArg = *(*int64)(arg)
			if badArg == 128<<10 {
				return 1, nil
			}
		case unix.MEMSETBADBLOCK:
			badArg = *(*int64)(arg)
			return 0, unix.EROFS
		case unix.ECCGETSTATS:
			*(*unix.MtdEccStats)(arg) = unix.MtdEccStats{Corrected: 3, Failed: 1, Badblocks: 2}
		}
		return 0, nil
	}
	info, err := d.Info()
	if want := (Info{Type: TypeNAND, Size: 1 << 20, EraseSize: 128 << 10, WriteSize: 2048, OOBSize: 64}); err != nil || info != want {
		t.Errorf("Info() = %+v, %v, want %+v", info, err, want)
	}
	if err := d.Erase(256<<10, 128<<10); err != nil || erased.Start != 256<<10 || erased.Length != 128<<10 {
		t.Errorf("Erase passed %+v, %v", erased, err)
	}
	if bad, err := d.IsBad(128 << 10); !bad || err != nil || badArg != 128<<10 {
		t.Errorf("IsBad(block 1) = %v, %v (arg %#x), want true", bad, err, badArg)
	}
	if bad, _ := d.IsBad(0); bad {
		t.Errorf("IsBad(block 0) = true, want false")
	}
	if err := d.MarkBad(384 << 10); !errors.Is(err, unix.EROFS) || badArg != 384<<10 {
		t.Errorf("MarkBad = %v (arg %#x), want EROFS", err, badArg)
	}
	st, err := d.(ECCStater).ECCStats()
	if want := (ECCStats{Corrected: 3, Failed: 1, BadBlocks: 2}); err != nil || st != want {
		t.Errorf("ECCStats() = %+v, %v, want %+v", st, err, want)
	}
	want := []uint{unix.MEMGETINFO, unix.MEMERASE64, unix.MEMGETBADBLOCK, unix.MEMGETBADBLOCK, unix.MEMSETBADBLOCK, unix.ECCGETSTATS}
	if len(calls) != len(want) {
		t.Fatalf("ioctl calls %x, want %x", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("ioctl call %d = %#x, want %#x", i, calls[i], want[i])
		}
	}
}
