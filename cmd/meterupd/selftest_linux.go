package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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

// idleRSS measures the resident memory of `meterupd run` on a fresh sim
// board after it has idled for settle: it runs this executable as
// `sim init DIR`, then `--state DIR run`, reads VmRSS from /proc, and stops
// it. A measurement for the report, not a check: it reads the sim board and
// the agent, which the self-test does not otherwise depend on.
func idleRSS(ctx context.Context, settle time.Duration) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(os.TempDir(), 0o1777); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sim")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "node")
	if out, err := exec.CommandContext(ctx, exe, "sim", "init", state).CombinedOutput(); err != nil {
		return "", fmt.Errorf("sim init: %w: %s", err, bytes.TrimSpace(out))
	}
	cmd := exec.CommandContext(ctx, exe, "--state", state, "run")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return "", fmt.Errorf("run exited early: %v: %s", err, bytes.TrimSpace(out.Bytes()))
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return "", ctx.Err()
	case <-time.After(settle):
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	cmd.Process.Kill()
	<-done
	if err != nil {
		return "", err
	}
	var fields []string
	for _, line := range strings.Split(string(status), "\n") {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "RssShmem:"} {
			if strings.HasPrefix(line, k) {
				fields = append(fields, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	return strings.Join(fields, ", "), nil
}
