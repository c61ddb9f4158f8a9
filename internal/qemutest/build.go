package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BuildStatic builds the Go package pkg (e.g. meterupd/cmd/meterupd) as a
// static, stripped Linux binary for goarch (goarm for GOARCH=arm) into dir,
// as make arm does, and returns its path.
func BuildStatic(ctx context.Context, pkg, dir, goarch, goarm string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, filepath.Base(pkg)+"-"+goarch+goarm)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm, "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("qemutest: go build %s for %s: %w: %s", pkg, goarch, err, stderr.Bytes())
	}
	return out, nil
}
