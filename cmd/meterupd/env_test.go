package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/boards/ubootenv"
	"meterupd/internal/realtool"
)

// envFixture makes a redundant environment image and its fw_env.config.
func envFixture(t *testing.T, vars ubootenv.Env) (img, cfg string) {
	t.Helper()
	dir := t.TempDir()
	img = filepath.Join(dir, "env.img")
	a, err := ubootenv.Encode(vars, 0x1000, true, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, append(a, bytes.Repeat([]byte{0xFF}, 0x1000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "fw_env.config")
	text := fmt.Sprintf("%s 0x0 0x1000\n%s 0x1000 0x1000\n", img, img)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return img, cfg
}

func runEnv(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"env"}, args...), &out, &errb)
	return out.String(), err
}

func TestEnvPrintAndSet(t *testing.T) {
	_, cfg := envFixture(t, ubootenv.Env{"bootcmd": "run meterupd", "bootdelay": "0", ".flags": "bootdelay:dw"})
	out, err := runEnv(t, "print", "-c", cfg)
	if err != nil || out != "bootcmd=run meterupd\nbootdelay=0\n" {
		t.Errorf("env print = %q, %v", out, err)
	}
	if _, err := runEnv(t, "set", "-c", cfg, "meterupd_order=B A", "meterupd_left_B=3", "bootdelay="); err != nil {
		t.Fatalf("env set: %v", err)
	}
	out, err = runEnv(t, "print", "-c", cfg, "meterupd_order", "meterupd_left_B")
	if err != nil || out != "meterupd_order=B A\nmeterupd_left_B=3\n" {
		t.Errorf("env print NAMEs = %q, %v", out, err)
	}
	out, err = runEnv(t, "print", "-c", cfg, "-n", "meterupd_order")
	if err != nil || out != "B A\n" {
		t.Errorf("env print -n = %q, %v", out, err)
	}
	out, err = runEnv(t, "print", "-c", cfg, "--json", "meterupd_left_B")
	if err != nil || strings.TrimSpace(out) != `{"meterupd_left_B":"3"}` {
		t.Errorf("env print --json = %q, %v", out, err)
	}
	if out, err := runEnv(t, "print", "-c", cfg, "bootdelay", "bootcmd"); err == nil || !strings.Contains(err.Error(), "bootdelay") || out != "bootcmd=run meterupd\n" {
		t.Errorf("env print of a deleted variable = %q, %v, want the others printed and an error naming it", out, err)
	}
}

func TestEnvSetBadInputChangesNothing(t *testing.T) {
	img, cfg := envFixture(t, ubootenv.Env{"a": "1", "ethaddr": "02:00:00:00:00:01", ".flags": "ethaddr:mo"})
	before, _ := os.ReadFile(img)
	for _, args := range [][]string{
		{"set", "-c", cfg},
		{"set", "-c", cfg, "novalue"},
		{"set", "-c", cfg, "=x"},
		{"set", "-c", cfg, "big=" + strings.Repeat("x", 0x1000)},
		{"set", "-c", cfg, "a=2", "ethaddr=02:00:00:00:00:02"}, // write-once
		{"set", "-c", cfg, "ethaddr="},
		{"set", "-c", cfg, "a=1"}, // no change: no write
		{"frobnicate"},
		{},
	} {
		_, err := runEnv(t, args...)
		if len(args) > 0 && args[len(args)-1] == "a=1" {
			if err != nil {
				t.Errorf("env %q = %v, want nil", args, err)
			}
		} else if err == nil {
			t.Errorf("env %q succeeded, want an error", args)
		}
		if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
			t.Fatalf("env %q changed the environment", args)
		}
	}
}

func TestEnvNoValidCopy(t *testing.T) {
	img, cfg := envFixture(t, ubootenv.Env{"a": "1"})
	garbage := bytes.Repeat([]byte{0x5A}, 0x2000)
	if err := os.WriteFile(img, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runEnv(t, "print", "-c", cfg); !errors.Is(err, ubootenv.ErrNoValidCopy) {
		t.Errorf("env print = %v, want ErrNoValidCopy", err)
	}
	if _, err := runEnv(t, "set", "-c", cfg, "a=2"); !errors.Is(err, ubootenv.ErrNoValidCopy) {
		t.Errorf("env set = %v, want ErrNoValidCopy", err)
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, garbage) {
		t.Errorf("env set wrote over an environment with no valid copy")
	}
	if _, err := runEnv(t, "print", "-c", filepath.Join(t.TempDir(), "missing.config")); err == nil {
		t.Errorf("env print with a missing config succeeded")
	}
}

// TestRealEnvAgreesWithFwPrintenv: meterupd env set then fw_printenv, and
// fw_setenv then meterupd env print, on the same image.
func TestRealEnvAgreesWithFwPrintenv(t *testing.T) {
	printenv := realtool.Need(t, "fw_printenv", "libubootenv-tool")
	setenv := realtool.Need(t, "fw_setenv", "libubootenv-tool")
	_, cfg := envFixture(t, ubootenv.Env{"bootcmd": "run meterupd"})
	if _, err := runEnv(t, "set", "-c", cfg, "meterupd_order=B A", "upgrade_available=1", "bootcount=0"); err != nil {
		t.Fatalf("env set: %v", err)
	}
	theirs, err := exec.Command(printenv, "-c", cfg).Output()
	if err != nil {
		t.Fatalf("fw_printenv: %v", err)
	}
	ours, err := runEnv(t, "print", "-c", cfg)
	if err != nil || ours != string(theirs) {
		t.Errorf("meterupd env print = %q (%v), fw_printenv = %q", ours, err, theirs)
	}
	if b, err := exec.Command(setenv, "-c", cfg, "upgrade_available", "0", "bootcount").CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv: %v: %s", err, b)
	}
	ours, err = runEnv(t, "print", "-c", cfg)
	if want := "bootcmd=run meterupd\nmeterupd_order=B A\nupgrade_available=0\n"; err != nil || ours != want {
		t.Errorf("after fw_setenv, meterupd env print = %q, %v, want %q", ours, err, want)
	}
}
