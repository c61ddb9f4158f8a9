package ubootboot

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv"
	"meterupd/internal/realtool"
)

// The qemu_arm build of Debian's u-boot-qemu (2023.01) keeps a single
// environment copy of 0x40000 bytes at the start of the second flash bank
// (CONFIG_ENV_ADDR=0x4000000 on -M virt), loads scripts with "source".
const (
	ubootBin     = "/usr/lib/u-boot/qemu_arm/u-boot.bin"
	flashSize    = 64 << 20
	qemuEnvSize  = 0x40000
	scriptAddr   = "0x44000000"
	qemuDeadline = 60 * time.Second // a hung guest; a run takes about a second
)

func needUBoot(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(ubootBin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing (Debian package u-boot-qemu): CI needs the real U-Boot", ubootBin)
		}
		t.Skipf("%s missing: install Debian package u-boot-qemu (make deps)", ubootBin)
	}
}

// compileScript compiles testdata/meterupd.cmd with mkimage.
func compileScript(t *testing.T) string {
	t.Helper()
	mkimage := realtool.Need(t, "mkimage", "u-boot-tools")
	out := filepath.Join(t.TempDir(), "meterupd.scr")
	b, err := exec.Command(mkimage, "-A", "arm", "-O", "linux", "-T", "script", "-C", "none",
		"-n", "meterupd", "-d", filepath.Join("testdata", "meterupd.cmd"), out).CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage: %v: %s", err, b)
	}
	return out
}

// boardEnv is what a board's factory environment holds besides the boot
// state: the test boots "kernels" that only print their command line.
func boardEnv(saveHook bool) ubootenv.Env {
	env := ubootenv.Env{
		"bootdelay": "0",
		"bootcmd":   "source " + scriptAddr,
		"bootargs":  "console=ttyAMA0",
	}
	for _, s := range []string{"A", "B", "F"} {
		env["meterupd_boot_"+s] = "echo meterupd-test: started " + s + " with ${bootargs}; poweroff"
	}
	if saveHook {
		// This U-Boot cannot program the emulated flash: the test checks
		// decisions, the host checks saves.
		env["meterupd_save"] = "echo meterupd-test: save skipped"
	}
	return env
}

// flashWithState writes a flash bank holding the board environment and the
// boot state the agent stores while running booted.
func flashWithState(t *testing.T, saveHook bool, st hw.BootState, booted hw.Slot) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "flash1.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, flashSize); err != nil {
		t.Fatal(err)
	}
	store, err := ubootenv.Open(ubootenv.Config{Copies: []ubootenv.Location{{Device: img, Size: qemuEnvSize}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(boardEnv(saveHook)); err != nil {
		t.Fatal(err)
	}
	bc := New(store, WithRoot(rootWithCmdline(t, "console=ttyAMA0 meterupd.slot="+string(booted))))
	if err := bc.Store(st); err != nil {
		t.Fatalf("Store(%v): %v", st, err)
	}
	return img
}

// runUBoot boots U-Boot under qemu-system-arm -M virt with flash as the
// environment bank and the script in RAM, and returns the console output.
// interactive stops autoboot and types "source" (for U-Boot's default
// environment, whose bootcmd does not run the script).
func runUBoot(t *testing.T, flash, script string, interactive bool) string {
	t.Helper()
	qemu := realtool.Need(t, "qemu-system-arm", "qemu-system-arm")
	needUBoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), qemuDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "virt", "-m", "512M", "-nographic", "-nic", "none", "-no-reboot",
		"-bios", ubootBin,
		"-drive", "if=pflash,unit=1,format=raw,snapshot=on,file="+flash,
		"-device", "loader,file="+script+",addr="+scriptAddr+",force-raw=on")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	var out strings.Builder
	r := bufio.NewReader(stdout)
	line := ""
	for {
		b, err := r.ReadByte()
		if err != nil {
			break
		}
		out.WriteByte(b)
		line += string(b)
		if interactive && strings.Contains(line, "Hit any key to stop autoboot") {
			io.WriteString(stdin, "\n")
			line = ""
		}
		if interactive && strings.HasSuffix(line, "=> ") {
			io.WriteString(stdin, "source "+scriptAddr+"\n")
			interactive = false
		}
		if b == '\n' {
			line = ""
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil && ctx.Err() != nil {
		t.Fatalf("qemu did not finish within %v: %s", qemuDeadline, out.String())
	}
	return out.String()
}

var (
	trying  = regexp.MustCompile(`meterupd: trying ([ABF]) \(left A=(\d*) B=(\d*) F=(\d*), bootcount=(\d*)\)`)
	booting = regexp.MustCompile(`meterupd: booting ([ABF])\r?\n`)
	started = regexp.MustCompile(`meterupd-test: started ([ABF]) with (.*meterupd\.slot=([ABF]))`)
)

// TestRealUBootScriptChoosesSlot runs the boot script in real U-Boot on
// environment states the boot control writes: an armed trial boots the
// new slot (counter decremented before the jump), an exhausted trial the
// previous slot, nothing left F; a failed save and a lost environment
// boot F.
func TestRealUBootScriptChoosesSlot(t *testing.T) {
	script := compileScript(t)
	both := map[hw.Slot]int{hw.SlotB: 3, hw.SlotA: 3}
	tests := []struct {
		name     string
		state    hw.BootState
		booted   hw.Slot
		saveHook bool
		garbage  bool   // no valid environment
		try      string // "" when no slot is tried
		left     [2]string
		count    string
		boot     string
	}{
		{name: "armed trial boots B", state: hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: both}, booted: hw.SlotA,
			saveHook: true, try: "B", left: [2]string{"3", "2"}, count: "1", boot: "B"},
		// B ran out of attempts; the agent, running B from its last
		// attempt, arms the way back to A (a trial of A: bootcount counts).
		{name: "exhausted trial boots previous A", booted: hw.SlotB, saveHook: true,
			state: hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 0, hw.SlotA: 3}},
			try:   "A", left: [2]string{"2", "0"}, count: "1", boot: "A"},
		{name: "nothing left boots F", booted: hw.SlotA, saveHook: true,
			state: hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 0, hw.SlotA: 0}},
			boot:  "F"},
		{name: "committed A boots A", booted: hw.SlotA, saveHook: true,
			state: hw.BootState{Order: []hw.Slot{hw.SlotA, hw.SlotB}, Left: map[hw.Slot]int{hw.SlotA: 3}},
			try:   "A", left: [2]string{"2", ""}, count: "0", boot: "A"},
		{name: "failed save boots F", state: hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: both}, booted: hw.SlotA,
			try: "B", left: [2]string{"3", "2"}, count: "1", boot: "F"},
		{name: "no valid environment boots F", garbage: true, boot: "F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var flash string
			if tt.garbage {
				flash = filepath.Join(t.TempDir(), "flash1.img")
				if err := os.WriteFile(flash, []byte("not an environment"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(flash, flashSize); err != nil {
					t.Fatal(err)
				}
			} else {
				flash = flashWithState(t, tt.saveHook, tt.state, tt.booted)
			}
			out := runUBoot(t, flash, script, tt.garbage)
			t.Logf("U-Boot console:\n%s", tail(out, 12))
			if tt.garbage && !strings.Contains(out, "bad CRC, using default environment") {
				t.Errorf("U-Boot did not report the bad environment")
			}
			m := trying.FindStringSubmatch(out)
			switch {
			case tt.try == "" && m != nil:
				t.Errorf("script tried %s, want no slot tried", m[1])
			case tt.try != "" && m == nil:
				t.Errorf("script tried no slot, want %s", tt.try)
			case tt.try != "":
				if m[1] != tt.try || m[2] != tt.left[0] || m[3] != tt.left[1] || m[5] != tt.count {
					t.Errorf("script tried %s with left A=%s B=%s bootcount=%s, want %s with A=%s B=%s bootcount=%s",
						m[1], m[2], m[3], m[5], tt.try, tt.left[0], tt.left[1], tt.count)
				}
			}
			if m := booting.FindStringSubmatch(out); m == nil || m[1] != tt.boot {
				t.Fatalf("script boots %v, want %s", m, tt.boot)
			}
			if tt.garbage {
				if !strings.Contains(out, "meterupd: slot F did not start") {
					t.Errorf("default environment: want the F boot command to be missing and reported")
				}
				return
			}
			if tt.try != "" && !tt.saveHook && !strings.Contains(out, "meterupd: cannot save the attempt counter") {
				t.Errorf("failed save not reported")
			}
			s := started.FindStringSubmatch(out)
			if s == nil || s[1] != tt.boot || s[3] != tt.boot || !strings.Contains(s[2], "console=ttyAMA0") {
				t.Errorf("started %v, want slot %s with console=ttyAMA0 ... meterupd.slot=%s", s, tt.boot, tt.boot)
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestRealUBootTrialRunsOut boots real U-Boot again and again on one
// environment: the agent arms a trial of B with 2 attempts while A runs
// and B never confirms. This U-Boot cannot save to QEMU's flash, so after
// each boot the host stores the counters the script printed, as its save
// would have. B is tried twice, then A, whose attempts run out too, then F.
func TestRealUBootTrialRunsOut(t *testing.T) {
	script := compileScript(t)
	arm := hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 2, hw.SlotA: 1}}
	flash := flashWithState(t, true, arm, hw.SlotA)
	store, err := ubootenv.Open(ubootenv.Config{Copies: []ubootenv.Location{{Device: flash, Size: qemuEnvSize}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for boot := 0; boot < 5; boot++ {
		out := runUBoot(t, flash, script, false)
		b := booting.FindStringSubmatch(out)
		if b == nil {
			t.Fatalf("boot %d: no decision in:\n%s", boot, tail(out, 12))
		}
		got = append(got, b[1])
		m := trying.FindStringSubmatch(out)
		if m == nil {
			break // F by exhaustion: nothing to save
		}
		err := store.Update(func(e ubootenv.Env) error {
			e[VarLeftPrefix+"A"], e[VarLeftPrefix+"B"], e[VarBootCount] = m[2], m[3], m[5]
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"B", "B", "A", "F"}; !reflect.DeepEqual(got, want) {
		t.Errorf("boots = %v, want %v", got, want)
	}
	env, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if env[VarBootCount] != "3" || env[VarBootLimit] != "2" || env[VarUpgradeAvailable] != "1" {
		t.Errorf("bootcount=%s bootlimit=%s upgrade_available=%s, want 3, 2, 1 (bootcount > bootlimit: U-Boot's altboot condition)",
			env[VarBootCount], env[VarBootLimit], env[VarUpgradeAvailable])
	}
}
