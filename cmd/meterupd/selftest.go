package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"meterupd/boards"
	"meterupd/boards/blockdev"
	"meterupd/boards/hw"
	"meterupd/boards/mtd"
	"meterupd/boards/mtd/mtdsmoketest"
	"meterupd/boards/mtd/mtdtest"
)

// The result line: tests and the QEMU host look for it on the console.
const (
	selftestPass = "METERUPD-SELFTEST: PASS"
	selftestFail = "METERUPD-SELFTEST: FAIL"
)

func init() {
	register(&command{
		name:  "selftest",
		usage: "[--mtd-dev mtdN]... [--blockdev NAME]... [--init] check this binary on this CPU (devices given are erased: scratch only)",
		run:   cmdSelftest,
	})
}

// errSelftest: one of the self-test's checks failed.
var errSelftest = errors.New("selftest failed")

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdSelftest(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("selftest", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var devs stringList
	fs.Var(&devs, "mtd-dev", "run the destructive MTD smoke test on this device (mtdN, as in /proc/mtd); repeatable")
	var parts stringList
	fs.Var(&parts, "blockdev", "run the destructive flash check on this block device partition (GPT name); repeatable")
	rssAfter := fs.Duration("idle-rss", 0, "also report the resident memory of `meterupd run` on a fresh sim board after it idled this long (Linux; a measurement, not a check)")
	asInit := fs.Bool("init", false, "run as the init of a test VM: mount /proc, /sys, /dev, load the modules in /lib/modules/load, power off at the end")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() != 0 {
		return usageError{"selftest takes no arguments"}
	}
	run := func() error {
		if *rssAfter > 0 {
			rss, err := idleRSS(ctx, *rssAfter)
			if err != nil {
				fmt.Fprintf(env.stdout, "selftest: idle rss: unavailable: %v\n", err)
			} else {
				fmt.Fprintf(env.stdout, "selftest: idle rss of meterupd run (sim, %v): %s\n", *rssAfter, rss)
			}
		}
		return selftest(env.stdout, devs, parts)
	}
	if *asInit {
		return guestInit(ctx, env, run)
	}
	return run()
}

// selftest runs the checks and prints one line per check and the result line.
func selftest(w io.Writer, devs, parts []string) error {
	fmt.Fprintf(w, "selftest: %s/%s %s\n", runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "selftest: boards: %s\n", strings.Join(boards.Names(), ", "))
	checks := []struct {
		name string
		fn   func() error
	}{
		{"crc32", checkCRC32},
		{"sha256", checkSHA256},
		{"cbor", checkCBOR},
		{"flash-fake", func() error { return checkFakeFlash(w) }},
	}
	for _, d := range devs {
		checks = append(checks, struct {
			name string
			fn   func() error
		}{"mtd " + d, func() error { return checkMTD(w, "/", d) }})
	}
	for _, p := range parts {
		checks = append(checks, struct {
			name string
			fn   func() error
		}{"blockdev " + p, func() error { return checkBlockdev(w, "/", p) }})
	}
	var failed []string
	for _, c := range checks {
		if err := c.fn(); err != nil {
			fmt.Fprintf(w, "selftest: %s: FAIL: %v\n", c.name, err)
			failed = append(failed, c.name)
			continue
		}
		fmt.Fprintf(w, "selftest: %s: ok\n", c.name)
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "%s: %s\n", selftestFail, strings.Join(failed, ", "))
		return fmt.Errorf("%w: %s", errSelftest, strings.Join(failed, ", "))
	}
	fmt.Fprintln(w, selftestPass)
	return nil
}

func checkCRC32() error {
	// The check value of CRC-32/IEEE (the U-Boot environment's CRC).
	if got := crc32.ChecksumIEEE([]byte("123456789")); got != 0xCBF43926 {
		return fmt.Errorf("crc32(123456789) = %#x, want 0xcbf43926", got)
	}
	return nil
}

func checkSHA256() error {
	sum := sha256.Sum256([]byte("abc")) // FIPS 180-2 appendix B.1
	if got, want := hex.EncodeToString(sum[:]), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		return fmt.Errorf("sha256(abc) = %s, want %s", got, want)
	}
	return nil
}

func checkCBOR() error {
	// RFC 8949 appendix A: 1000000 is 0x1a000f4240.
	b, err := cbor.Marshal(uint64(1000000))
	if err != nil {
		return err
	}
	if !bytes.Equal(b, []byte{0x1a, 0x00, 0x0f, 0x42, 0x40}) {
		return fmt.Errorf("cbor(1000000) = %x, want 1a000f4240", b)
	}
	type rec struct {
		Seq  uint64            `cbor:"1,keyasint"`
		Name string            `cbor:"2,keyasint"`
		Tags map[string][]byte `cbor:"3,keyasint"`
	}
	in := rec{Seq: 42, Name: "rootfs_b", Tags: map[string][]byte{"sha256": {1, 2, 3}}}
	b, err = cbor.Marshal(in)
	if err != nil {
		return err
	}
	var out rec
	if err := cbor.Unmarshal(b, &out); err != nil {
		return err
	}
	if out.Seq != in.Seq || out.Name != in.Name || !bytes.Equal(out.Tags["sha256"], in.Tags["sha256"]) {
		return fmt.Errorf("cbor round trip = %+v, want %+v", out, in)
	}
	return nil
}

// checkFakeFlash runs the MTD driver's smoke test on an in-memory NAND with
// a factory bad block: the driver's logic, without a kernel.
func checkFakeFlash(w io.Writer) error {
	chip := mtdtest.NewNAND(16*16<<10, 16<<10, 512, 16, 3)
	return mtdsmoketest.Run(chip, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// checkMTD runs the smoke test on a real MTD device: found in /proc/mtd,
// opened by name through the driver, then exercised raw.
func checkMTD(w io.Writer, root, dev string) error {
	n, err := strconv.Atoi(strings.TrimPrefix(dev, "mtd"))
	if err != nil {
		return fmt.Errorf("device %q: want mtdN", dev)
	}
	parts, err := mtd.ReadPartitions(root + "proc/mtd")
	if err != nil {
		return err
	}
	var part *mtd.Partition
	for i := range parts {
		if parts[i].Index == n {
			part = &parts[i]
		}
	}
	if part == nil {
		return fmt.Errorf("%s not in /proc/mtd", dev)
	}
	f, err := mtd.Open(root, part.Name)
	if err != nil {
		return err
	}
	info := f.Info()
	if err := f.Close(); err != nil {
		return err
	}
	if info.Size != part.Size || info.EraseSize != part.EraseSize {
		return fmt.Errorf("%s: MEMGETINFO says size %#x erase %#x, /proc/mtd says %#x %#x", dev, info.Size, info.EraseSize, part.Size, part.EraseSize)
	}
	d, err := mtd.OpenDevice(root+"dev/"+dev, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return mtdsmoketest.Run(d, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
}

// BlockdevPattern is what checkBlockdev leaves in the first write unit of
// the second erase unit of the partition, for the host to verify.
const BlockdevPattern = "meterupd blockdev selftest"

// checkBlockdev checks the block-device driver on a partition found by GPT
// name: erase, program, read back, the flash rules. It leaves
// BlockdevPattern at the start of the second erase unit.
func checkBlockdev(w io.Writer, root, name string) error {
	f, err := blockdev.Open(root, name, blockdev.WithEraseSize(64<<10))
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "selftest: blockdev %s: size %d erase %d write %d\n", name, f.Size(), f.EraseSize(), f.WriteSize())
	es, ws := f.EraseSize(), f.WriteSize()
	if f.Size() < 2*es {
		return fmt.Errorf("partition %s: %d bytes, want at least 2 erase units", name, f.Size())
	}
	if err := f.Erase(0, 2*es); err != nil {
		return err
	}
	page := make([]byte, ws)
	copy(page, BlockdevPattern)
	for i := len(BlockdevPattern); i < len(page); i++ {
		page[i] = 0xFF
	}
	if _, err := f.WriteAt(page, es); err != nil {
		return err
	}
	got := make([]byte, ws)
	if _, err := f.ReadAt(got, es); err != nil {
		return err
	}
	if !bytes.Equal(got, page) {
		return fmt.Errorf("read back %q, want %q", got[:len(BlockdevPattern)], BlockdevPattern)
	}
	if _, err := f.ReadAt(got, 0); err != nil {
		return err
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, int(ws))) {
		return fmt.Errorf("erased unit reads %x…, want 0xff", got[:8])
	}
	ones := bytes.Repeat([]byte{0xFF}, int(ws))
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x01}, int(ws)), es); !errors.Is(err, hw.ErrNotErased) {
		return fmt.Errorf("setting bits: got %v, want hw.ErrNotErased", err)
	}
	if _, err := f.WriteAt(ones, 1); !errors.Is(err, hw.ErrAlignment) {
		return fmt.Errorf("misaligned write: got %v, want hw.ErrAlignment", err)
	}
	return nil
}
