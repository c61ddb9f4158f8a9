package qemutest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Version string // e.g. 6.1.0-50-armmp
	Image   string // path of vmlinuz
	Modules string // path of lib/modules/<version>
}

// ErrNoKernel: the kernel package could not be fetched or unpacked.
var ErrNoKernel = errors.New("qemutest: no kernel")

// DefaultKernelPackage is the Debian metapackage of the multiplatform ARMv7
// kernel, which boots on QEMU's virt machine.
const DefaultKernelPackage = "linux-image-armmp"

// FetchKernel returns the armhf kernel of Debian package pkg (a metapackage
// such as linux-image-armmp), unpacked under cacheDir. A kernel already in
// cacheDir is returned without running apt. Otherwise apt-get runs with a
// private configuration under cacheDir/apt (sources for armhf only, its own
// lists and state), so the machine's apt setup is left as it is.
func FetchKernel(ctx context.Context, cacheDir, pkg string) (Kernel, error) {
	unpacked := filepath.Join(cacheDir, pkg)
	if k, err := findKernel(unpacked); err == nil {
		return k, nil
	}
	aptDir := filepath.Join(cacheDir, "apt")
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "debs"} {
		if err := os.MkdirAll(filepath.Join(aptDir, d), 0o755); err != nil {
			return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
		}
	}
	suite, err := hostSuite()
	if err != nil {
		return Kernel{}, err
	}
	sources := fmt.Sprintf("deb [arch=armhf signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n", suite)
	if err := os.WriteFile(filepath.Join(aptDir, "sources.list"), []byte(sources), 0o644); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	if err := os.WriteFile(filepath.Join(aptDir, "status"), nil, 0o644); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	opts := []string{
		"-o", "APT::Architecture=armhf",
		"-o", "APT::Architectures=armhf",
		"-o", "Dir::Etc::SourceList=" + filepath.Join(aptDir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(aptDir, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(aptDir, "lists"),
		"-o", "Dir::State::Status=" + filepath.Join(aptDir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(aptDir, "cache"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Sandbox::User=root",
	}
	if _, err := run(ctx, "", "apt-get", append(opts, "-qq", "update")...); err != nil {
		return Kernel{}, err
	}
	// The metapackage depends on the versioned package.
	out, err := run(ctx, "", "apt-cache", append(opts, "depends", pkg+":armhf")...)
	if err != nil {
		return Kernel{}, err
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s:]*)`).FindSubmatch(out)
	if m == nil {
		return Kernel{}, fmt.Errorf("%w: %s has no linux-image dependency", ErrNoKernel, pkg)
	}
	debs := filepath.Join(aptDir, "debs")
	if _, err := run(ctx, debs, "apt-get", append(opts, "-qq", "download", string(m[1])+":armhf")...); err != nil {
		return Kernel{}, err
	}
	matches, _ := filepath.Glob(filepath.Join(debs, string(m[1])+"_*_armhf.deb"))
	if len(matches) == 0 {
		return Kernel{}, fmt.Errorf("%w: %s not downloaded", ErrNoKernel, m[1])
	}
	tmp := unpacked + ".tmp"
	os.RemoveAll(tmp)
	if _, err := run(ctx, "", "dpkg-deb", "-x", matches[0], tmp); err != nil {
		return Kernel{}, err
	}
	os.RemoveAll(unpacked)
	if err := os.Rename(tmp, unpacked); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	os.Remove(matches[0]) // the unpacked tree is the cache
	return findKernel(unpacked)
}

func findKernel(dir string) (Kernel, error) {
	imgs, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(imgs) != 1 {
		return Kernel{}, fmt.Errorf("%w: %d kernel images in %s", ErrNoKernel, len(imgs), dir)
	}
	v := strings.TrimPrefix(filepath.Base(imgs[0]), "vmlinuz-")
	mods := filepath.Join(dir, "lib", "modules", v)
	if _, err := os.Stat(mods); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	return Kernel{Version: v, Image: imgs[0], Modules: mods}, nil
}

// hostSuite is the Debian codename of this machine (bookworm, trixie…).
func hostSuite() (string, error) {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", fmt.Errorf("%w: no VERSION_CODENAME in /etc/os-release (not Debian?)", ErrNoKernel)
}

func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s %s: %w: %s", ErrNoKernel, name, strings.Join(args[len(args)-2:], " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
