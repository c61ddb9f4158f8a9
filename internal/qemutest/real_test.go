package qemutest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/internal/qemutest"
	"meterupd/internal/realtool"
)

// nandsim geometry for the guest: a 256 MiB SLC NAND with 2 KiB pages and
// 128 KiB erase blocks (ID bytes of a 2 Gbit part), cut into partitions of
// 8 and 16 blocks and the rest; block 10 (block 2 of mtd1) is bad from the
// factory.
const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 parts=8,16 badblocks=10"

// The guest's virtio disk: GPT with "common" then "rootfs_a", 1 MiB and
// 2 MiB, in 512-byte sectors.
var disk = []qemutest.GPTPart{{Name: "common", FirstLBA: 2048, LastLBA: 4095}, {Name: "rootfs_a", FirstLBA: 4096, LastLBA: 8191}}

const diskSize = 8 << 20

// TestRealKernelFlashDriversUnderQEMU boots Debian's armhf kernel in
// qemu-system-arm (one boot for all real-kernel driver checks) with the
// static ARM meterupd as init, the kernel's nandsim module and a virtio disk,
// and runs `meterupd selftest`: the MTD smoke test on /dev/mtd1 through the
// real MTD subsystem, and the block-device check on the GPT partition
// "rootfs_a". The host then reads what the guest wrote on the disk.
func TestRealKernelFlashDriversUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	qemu := realtool.Need(t, "qemu-system-arm", "qemu-system-arm")
	realtool.Need(t, "apt-get", "apt")
	realtool.Need(t, "dpkg-deb", "dpkg")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cache, err := qemutest.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := qemutest.FetchKernel(ctx, cache, qemutest.DefaultKernelPackage)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fetch kernel: %v", err)
		}
		t.Skipf("fetch kernel (no network?): %v", err)
	}
	t.Logf("kernel %s", k.Version)
	var mods []qemutest.Module
	seen := map[string]bool{}
	for _, name := range []string{"nandsim", "virtio_mmio", "virtio_blk"} {
		order, err := qemutest.ModuleOrder(k.Modules, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range order {
			if !seen[m.Name] {
				seen[m.Name] = true
				mods = append(mods, m)
			}
		}
	}
	dir := t.TempDir()
	bin, err := qemutest.BuildStatic(ctx, "meterupd/cmd/meterupd", dir, "arm", "7")
	if err != nil {
		t.Fatal(err)
	}
	initBin, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var initrd bytes.Buffer
	err = qemutest.Initramfs{
		Init:    initBin,
		Modules: mods,
		Params:  map[string]string{"nandsim": nandsimParams},
	}.Write(&initrd)
	if err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	diskPath := filepath.Join(dir, "disk.img")
	df, err := os.Create(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := df.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	if err := qemutest.WriteGPT(df, diskSize, disk); err != nil {
		t.Fatal(err)
	}
	if err := df.Close(); err != nil {
		t.Fatal(err)
	}

	cmdline := "quiet rdinit=/init -- selftest --init --mtd-dev mtd1 --blockdev rootfs_a"
	if os.Getenv("METERUPD_IDLE_RSS") == "1" {
		// The figure for the report costs ~12 s of emulation (sim init).
		cmdline += " --idle-rss 3s"
	}
	start := time.Now()
	out, err := qemutest.Boot{
		QEMU:    qemu,
		Kernel:  k.Image,
		Initrd:  initrdPath,
		Disks:   []string{diskPath},
		Cmdline: cmdline,
	}.Run(ctx)
	t.Logf("guest ran %v; console:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	// With METERUPD_IDLE_RSS=1, a figure for the report (the sim board and
	// agent are not under test here): the resident memory of the armv7
	// `meterupd run`, idle.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "idle rss") {
			t.Logf("guest: %s", strings.TrimSpace(line))
		}
	}
	for _, want := range []string{
		"selftest: linux/arm ",
		`msg="ecc stats" corrected=0 failed=0 bad_blocks=1`, // ECCGETSTATS
		`msg="bad blocks before" offsets=[262144]`,          // nandsim's badblocks=10
		`msg="bad-block marking: ok" block=131072`,
		// Logical block 1 skips the marked block 1 and the factory bad block 2.
		`msg="slot across a bad block: ok" logical_block_1_at=393216`,
		`msg="too few good blocks: ok"`,
		"selftest: mtd mtd1: ok",
		"selftest: blockdev rootfs_a: size 2097152 erase 65536 write 512",
		"selftest: blockdev rootfs_a: ok",
		"METERUPD-SELFTEST: PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}

	// What the guest wrote through the block layer is on the disk: erase
	// unit 0 of rootfs_a is 0xFF, unit 1 starts with the pattern, and the
	// partition before it is untouched.
	img, err := os.ReadFile(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := img[disk[1].FirstLBA*512:]
	if !bytes.Equal(rootfs[:64<<10], bytes.Repeat([]byte{0xFF}, 64<<10)) {
		t.Errorf("rootfs_a erase unit 0 is not erased on the disk")
	}
	if want := "meterupd blockdev selftest"; !bytes.HasPrefix(rootfs[64<<10:], []byte(want)) {
		t.Errorf("rootfs_a erase unit 1 starts %q, want %q", rootfs[64<<10:64<<10+len(want)], want)
	}
	common := img[disk[0].FirstLBA*512 : (disk[0].LastLBA+1)*512]
	if !bytes.Equal(common, make([]byte, len(common))) {
		t.Errorf("partition common was written")
	}
}
