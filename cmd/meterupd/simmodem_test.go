package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/modem/modemsim"
	"meterupd/boards/sim"
	"meterupd/internal/realtool"
	"meterupd/manifest"
)

// simulateModem runs `meterupd sim modem --simulate DIALECT` for the node
// in dir until the test ends, and waits until the node's status shows the
// module's firmware (the direct status asks it).
func simulateModem(t *testing.T, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		errc <- run(ctx, append([]string{"--state", dir, "sim", "modem", "--simulate"}, args...), &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("sim modem --simulate: %v\n%s", err, errb.String())
		}
		if _, err := os.Lstat(filepath.Join(dir, "ttyMODEM")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the module's port link outlives it: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "modem-dialect")); err == nil {
			return
		}
		select {
		case err := <-errc:
			errc <- err
			t.Fatalf("sim modem --simulate ended: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the simulated module never registered its port")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// modemImage is an update file the simulated module installs as version to.
func modemImage(to string) []byte {
	b := []byte("MODEMFW " + to + "\n")
	r := rand.New(rand.NewPCG(1, 2))
	for len(b) < 3000 {
		b = append(b, byte(r.UintN(256)))
	}
	return b
}

// TestSimModemSystemAndModemPackage is make demo's radio module story as a test: a
// node with a simulated module (Quectel, u-blox) installs one signed
// package with a system set and the module's firmware; status shows the
// module's firmware before and after.
func TestSimModemSystemAndModemPackage(t *testing.T) {
	for _, tc := range []struct{ dialect, from, to string }{
		{"quectel", modemsim.DefaultRevision, "BG95M3LAR02A04_01.200.01.200"},
		{"ublox", modemsim.UBloxRevision, "L0.0.00.00.05.12"},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			t.Parallel()
			simModemPackage(t, tc.dialect, tc.from, tc.to)
		})
	}
}

func simModemPackage(t *testing.T, dialect, from, to string) {
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, key.Public())
	simulateModem(t, dir, dialect)
	if st := status(t, dir); st.Components["modem"] != from {
		t.Fatalf("status before: components %v, want modem %s", st.Components, from)
	}
	if out := mustMU(t, dir, "status"); !strings.Contains(out, "modem firmware: "+from) {
		t.Errorf("status text before lacks the module's firmware:\n%s", out)
	}
	items, payloads := chainItems(t)
	sys := items[0]
	sys.Prereqs = []manifest.Prereq{{Item: "bg95"}}
	fw := modemImage(to)
	m := &manifest.Manifest{Schema: 1, Sequence: 3, Items: []manifest.Item{sys, {
		ID: "bg95", Component: manifest.ComponentModem, Kind: manifest.KindFull, To: to, DeviceTypes: []string{"em300"},
		Payload: "bg95.bin", Size: uint64(len(fw)), Digest: digest(fw), TargetDigest: digest(fw), TargetSize: uint64(len(fw)),
	}}}
	pkg := writePkg(t, key, m, [][]byte{payloads[0], fw}, nil)
	mustMU(t, dir, "install", pkg)
	mustMU(t, dir, "run", "--once")
	st := status(t, dir)
	if st.Last == nil || st.Last.Code != agent.Committed || st.Slots["B"].Version != "2.0" || st.Components["modem"] != to {
		t.Fatalf("after the package: last %+v, B %+v, components %v", st.Last, st.Slots["B"], st.Components)
	}
	if st.Radio == nil || st.Radio.Firmware != to {
		t.Errorf("radio after the package = %+v, want firmware %s", st.Radio, to)
	}
	out := mustMU(t, dir, "status")
	for _, want := range []string{"modem firmware: " + to, "install ok (modem " + to + " installed)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

func TestSimModemUsage(t *testing.T) {
	dir := newNode(t)
	for _, args := range [][]string{
		{"sim", "modem", "--simulate", "nokia"},
		{"sim", "modem", "/dev/ttyS1", "--dialect", "nokia"},
		{"sim", "modem", "--simulate", "quectel", "/dev/ttyS1"},
		{"sim", "modem", "/dev/ttyS1", "--revision", "X"},
	} {
		if _, err := mu(t, dir, args...); !errors.As(err, new(usageError)) {
			t.Errorf("meterupd %s = %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	// A real port with a dialect: the node's module is updatable; none
	// takes both away.
	mustMU(t, dir, "sim", "modem", "/dev/ttyS1", "--dialect", "ublox")
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.ModemFirmware() == nil {
		t.Error("a port with a dialect: no hw.ModemFirmware")
	}
	b.Close()
	mustMU(t, dir, "sim", "modem", "none")
	b, err = sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if fw := b.ModemFirmware(); fw != nil {
		t.Errorf("no port: hw.ModemFirmware %T", fw)
	}
}

// TestDemoModemScript runs make demo's radio module story (scripts/demo-modem.sh) on
// freshly built binaries: the module's firmware before, after the first
// package, and back after the second, as the script shows them.
func TestDemoModemScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bash := realtool.Need(t, "bash", "bash")
	sc := realtool.Need(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(sc, "../../scripts/demo-modem.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "meterupd/cmd/meterupd", "meterupd/cmd/meterpkg").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bash, "../../scripts/demo-modem.sh", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("demo-modem.sh: %v\n%s", err, out)
	}
	text := string(out)
	const a03, a04 = "BG95M3LAR02A03", "BG95M3LAR02A04_01.200.01.200"
	for _, want := range []string{
		"modem firmware: " + a03,
		"last result: committed, running version 2.0 in slot B",
		"install ok (modem " + a04 + " installed)",
		"last result: rolled-back, running version 2.0 in slot B",
		"restore ok (rolled back to " + a04 + ")",
		"components pkg-2 (undo) bg95-a05=reverting:started",
		"components pkg-2 (undo) bg95-a05=rolled-back; last rolled-back 2.0; modem " + a04,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the story lacks %q:\n%s", want, text)
		}
	}
	if i, j := strings.Index(text, "modem firmware: "+a03), strings.LastIndex(text, "modem firmware: "+a04); i < 0 || j < i {
		t.Errorf("the module's firmware is not shown old, then new")
	}
}
