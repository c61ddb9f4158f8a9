package qemutest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"meterupd/internal/syncbuf"
)

// Initramfs is what the guest boots into.
type Initramfs struct {
	Init    []byte   // the static ARM program run as /init
	Modules []Module // copied to /lib/modules/<name>.ko, listed in load order
	// Params are module parameters by module name (e.g. nandsim's id_bytes).
	Params map[string]string
}

// Write writes the initramfs as a newc cpio archive: /init, /dev/console
// (so the kernel gives init a console before devtmpfs is mounted), the
// modules, and /lib/modules/load, one "name.ko params" line per module in
// load order.
func (r Initramfs) Write(w io.Writer) error {
	c := NewWriter(w)
	for _, d := range []string{"dev", "proc", "sys", "lib", "lib/modules"} {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := c.File("init", 0o755, r.Init); err != nil {
		return err
	}
	var load strings.Builder
	for _, m := range r.Modules {
		data, err := os.ReadFile(m.Path)
		if err != nil {
			return fmt.Errorf("qemutest: %w", err)
		}
		if err := c.File("lib/modules/"+m.Name+".ko", 0o644, data); err != nil {
			return err
		}
		fmt.Fprintf(&load, "%s.ko %s\n", m.Name, r.Params[m.Name])
	}
	if err := c.File("lib/modules/load", 0o644, []byte(load.String())); err != nil {
		return err
	}
	return c.Close()
}

// Boot is one run of qemu-system-arm.
type Boot struct {
	QEMU    string // qemu-system-arm
	Kernel  string // zImage
	Initrd  string // cpio archive
	Cmdline string // appended after console=ttyAMA0 panic=-1
	MemMiB  int    // default 256
	// Disks are raw disk images, attached as virtio-blk devices (vda, vdb…
	// in the guest once virtio_mmio and virtio_blk are loaded).
	Disks []string
	// Console receives the serial console as it comes (e.g. t.Output()).
	Console io.Writer
}

// Run boots the guest on QEMU's virt machine with software emulation and
// waits until it powers off (or ctx ends). It returns the console output.
// The guest reports its result on the console; a kernel panic reboots,
// which -no-reboot turns into an exit.
func (b Boot) Run(ctx context.Context) (string, error) {
	mem := b.MemMiB
	if mem == 0 {
		mem = 256
	}
	args := []string{
		"-M", "virt", "-cpu", "cortex-a15", "-smp", "1", "-m", fmt.Sprint(mem),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", b.Kernel, "-initrd", b.Initrd,
		"-append", "console=ttyAMA0 panic=-1 " + b.Cmdline,
	}
	for i, d := range b.Disks {
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "file="+d+",format=raw,if=none,cache=writethrough,id="+id, "-device", "virtio-blk-device,drive="+id)
	}
	cmd := exec.CommandContext(ctx, b.QEMU, args...)
	var out syncBuffer
	var w io.Writer = &out
	if b.Console != nil {
		w = io.MultiWriter(&out, b.Console)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.Stdin = nil
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("qemutest: %s: %w", filepath.Base(b.QEMU), err)
	}
	return out.String(), nil
}

// syncBuffer is a process's output, read while it runs.
type syncBuffer = syncbuf.Buffer

// CacheDir is the repository's git-ignored cache directory for downloads,
// .cache/qemutest next to go.mod, found from the working directory.
func CacheDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("qemutest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "qemutest"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("qemutest: no go.mod above the working directory")
		}
		dir = parent
	}
}
