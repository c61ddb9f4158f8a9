package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// guestInit is PID 1 of a test VM: it mounts the kernel file systems, loads
// the modules listed in /lib/modules/load ("name.ko params" per line, in
// dependency order), runs fn, prints the result line and powers off.
func guestInit(_ context.Context, env *cmdEnv, fn func() error) error {
	err := guestSetup()
	if err == nil {
		err = fn()
	} else {
		fmt.Fprintf(env.stdout, "%s: setup: %v\n", selftestFail, err)
	}
	unix.Sync()
	if os.Getpid() != 1 {
		return err
	}
	// As PID 1, exiting would panic the kernel: power off instead.
	if perr := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); perr != nil {
		return fmt.Errorf("power off: %w", perr)
	}
	return err
}

func guestSetup() error {
	for _, m := range []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	f, err := os.Open("/lib/modules/load")
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, params, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if name == "" {
			continue
		}
		if err := loadModule("/lib/modules/"+name, params); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("load %s: %w", path, err)
	}
	return nil
}
