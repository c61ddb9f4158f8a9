package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"meterupd/internal/qemutest"
	"meterupd/internal/realtool"
)

func TestSelftestPasses(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"selftest"}, &out, &out); err != nil {
		t.Fatalf("selftest = %v; output:\n%s", err, out.String())
	}
	for _, want := range []string{"selftest: flash-fake: ok", selftestPass} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSelftestRejectsArguments(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"selftest", "extra"}, &out, &out)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("selftest extra = %v, want a usage error", err)
	}
}

func TestSelftestMTDNeedsDeviceName(t *testing.T) {
	var out bytes.Buffer
	if err := selftest(&out, []string{"nand0"}, nil); err == nil || !strings.Contains(out.String(), selftestFail) {
		t.Errorf("selftest(nand0) = %v, want a failure line; output:\n%s", err, out.String())
	}
}

// armv7Budget is the size budget of the stripped armv7 binary (issue 5).
const armv7Budget = 8 << 20

// TestRealQEMUUserARMv7Selftest builds the static, stripped armv7 binary as
// make arm does, checks it against its size budget, and runs its self-test
// under Debian's qemu-arm-static (called explicitly: binfmt_misc may not be
// mounted).
func TestRealQEMUUserARMv7Selftest(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds and emulates")
	}
	qemu := realtool.Need(t, "qemu-arm-static", "qemu-user-static")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := qemutest.BuildStatic(ctx, "meterupd/cmd/meterupd", t.TempDir(), "arm", "7")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stripped armv7 binary: %d bytes (%.2f MiB), budget %d MiB", st.Size(), float64(st.Size())/(1<<20), armv7Budget>>20)
	if st.Size() > armv7Budget {
		t.Errorf("stripped armv7 binary is %d bytes, over its budget of %d", st.Size(), armv7Budget)
	}
	out, err := exec.CommandContext(ctx, qemu, bin, "selftest").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-arm-static meterupd selftest: %v\n%s", err, out)
	}
	for _, want := range []string{"selftest: linux/arm ", "am335x-nand", selftestPass} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
