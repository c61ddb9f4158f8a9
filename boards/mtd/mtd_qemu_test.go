package mtd_test

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
// 128 KiB erase blocks (ID bytes of a Samsung/ST 2 Gbit part), cut into
// partitions of 8 and 16 blocks and the rest; block 10 (block 2 of mtd1) is
// bad from the factory.
const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 parts=8,16 badblocks=10"

// TestRealKernelMTDUnderQEMU boots Debian's armhf kernel in qemu-system-arm
// with the static ARM meterupd as init and the kernel's nandsim module, and
// runs the MTD smoke test on /dev/mtd1 through the real MTD subsystem.
func TestRealKernelMTDUnderQEMU(t *testing.T) {
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
	mods, err := qemutest.ModuleOrder(k.Modules, "nandsim")
	if err != nil {
		t.Fatal(err)
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

	start := time.Now()
	out, err := qemutest.Boot{
		QEMU:    qemu,
		Kernel:  k.Image,
		Initrd:  initrdPath,
		Cmdline: "quiet rdinit=/init -- selftest --init --mtd-dev mtd1",
	}.Run(ctx)
	t.Logf("guest ran %v; console:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("boot: %v", err)
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
		"METERUPD-SELFTEST: PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
}
