package am335x

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"meterupd/boards"
	"meterupd/boards/hw"
	"meterupd/boards/mtd"
	"meterupd/boards/mtd/mtdtest"
	"meterupd/boards/ubootenv"
)

func TestLayoutSortedAlignedNonOverlapping(t *testing.T) {
	names := map[string]bool{}
	var end int64
	for i, p := range Layout {
		if p.Source == "" {
			t.Errorf("%s: no source note", p.Name)
		}
		if names[p.Name] {
			t.Errorf("%s: listed twice", p.Name)
		}
		names[p.Name] = true
		if p.Offset%EraseSize != 0 || p.Size%EraseSize != 0 || p.Logical%EraseSize != 0 {
			t.Errorf("%s: offset %#x size %#x logical %#x not whole %#x erase blocks", p.Name, p.Offset, p.Size, p.Logical, EraseSize)
		}
		if p.Size <= 0 || p.Logical < 0 || p.Logical > p.Size {
			t.Errorf("%s: size %#x, logical %#x", p.Name, p.Size, p.Logical)
		}
		if i > 0 && p.Offset < end {
			t.Errorf("%s at %#x: overlaps or is out of order with %s (ends at %#x)", p.Name, p.Offset, Layout[i-1].Name, end)
		}
		end = p.Offset + p.Size
	}
	if end > ChipSize {
		t.Errorf("layout ends at %#x, past the chip's %#x", end, ChipSize)
	}
	for _, need := range []string{hw.PartJournal, hw.PartCommon} {
		if !names[need] {
			t.Errorf("no %s partition", need)
		}
	}
	for s, parts := range SlotParts {
		for _, n := range parts {
			if !names[n] {
				t.Errorf("slot %s: partition %s not in Layout", s, n)
			}
		}
	}
	for _, e := range Env {
		p := layoutPart(e.Partition)
		if p == nil || e.Offset%EraseSize != 0 || e.Offset+e.Size > p.Logical || e.Source == "" {
			t.Errorf("env copy %+v does not fit its partition %+v", e, p)
		}
	}
}

func layoutPart(name string) *Part {
	for i := range Layout {
		if Layout[i].Name == name {
			return &Layout[i]
		}
	}
	return nil
}

// fakeMeter is a root tree with /proc/mtd from Layout and fake NAND chips
// behind /dev/mtdN, made on first open.
type fakeMeter struct {
	root  string
	mu    sync.Mutex
	chips map[string]*mtdtest.Chip
	bad   map[string][]int // factory bad blocks per partition
}

func newFakeMeter(t *testing.T) *fakeMeter {
	t.Helper()
	m := &fakeMeter{root: t.TempDir(), chips: map[string]*mtdtest.Chip{}, bad: map[string][]int{"rootfs_a": {3}}}
	var parts []mtd.Partition
	for i, p := range Layout {
		parts = append(parts, mtd.Partition{Index: i, Size: p.Size, EraseSize: EraseSize, Name: p.Name})
	}
	for _, d := range []string{"proc", "sys/class/power_supply/ac"} {
		if err := os.MkdirAll(filepath.Join(m.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.root, "proc", "mtd"), []byte(mtd.Format(parts)), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *fakeMeter) opener() mtd.Option {
	return mtd.WithOpener(func(path string, readOnly bool) (mtd.Device, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		i, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "mtd"))
		if err != nil || i >= len(Layout) {
			return nil, os.ErrNotExist
		}
		p := Layout[i]
		if c, ok := m.chips[p.Name]; ok {
			return c, nil
		}
		c := mtdtest.NewNAND(p.Size, EraseSize, PageSize, 64, m.bad[p.Name]...)
		m.chips[p.Name] = c
		return c, nil
	})
}

func TestRegistered(t *testing.T) {
	e, ok := boards.Lookup(Name)
	if !ok || len(e.Compatible) == 0 {
		t.Fatalf("boards.Lookup(%q) = %+v, %v", Name, e, ok)
	}
}

func TestPartitionsAtTheirLogicalSize(t *testing.T) {
	m := newFakeMeter(t)
	b, err := Open(boards.Config{Root: m.root}, m.opener())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, name := range []string{hw.PartJournal, hw.PartCommon} {
		f, err := b.Partition(name)
		if err != nil {
			t.Fatalf("Partition(%s) = %v", name, err)
		}
		if got, want := f.Size(), layoutPart(name).Logical; got != want {
			t.Errorf("Partition(%s).Size() = %#x, want %#x", name, got, want)
		}
	}
	if _, err := b.Partition("kernel_a"); !errors.Is(err, ErrUnknownPartition) {
		t.Errorf("Partition(kernel_a) = %v, want ErrUnknownPartition", err)
	}
}

func TestSlotIsKernelThenRootfs(t *testing.T) {
	m := newFakeMeter(t)
	b, err := Open(boards.Config{Root: m.root}, m.opener())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := b.Slot(hw.SlotA)
	if err != nil {
		t.Fatal(err)
	}
	kernel := layoutPart("kernel_a").Logical
	if got, want := a.Size(), kernel+layoutPart("rootfs_a").Logical; got != want {
		t.Fatalf("Slot(A).Size() = %#x, want %#x", got, want)
	}
	// Write the last kernel block and the first 4 rootfs blocks (across
	// rootfs_a's factory bad block 3).
	start := kernel - EraseSize
	n := int64(5 * EraseSize)
	if err := a.Erase(start, n); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, n)
	for i := range img {
		img[i] = byte(i / PageSize)
	}
	if _, err := a.WriteAt(img, start); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if _, err := a.ReadAt(got, start); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read back across kernel/rootfs: %v", err)
	}
	raw := m.chips["rootfs_a"].Bytes()
	if !bytes.Equal(raw[4*EraseSize:5*EraseSize], img[4*EraseSize:]) {
		t.Errorf("rootfs logical block 3 is not at physical block 4 (block 3 is bad)")
	}
	f, err := b.Slot(hw.SlotF)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Erase(0, EraseSize); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("Slot(F).Erase = %v, want ErrReadOnly", err)
	}
}

func TestPowerFromSysfs(t *testing.T) {
	m := newFakeMeter(t)
	b, _ := Open(boards.Config{Root: m.root})
	online := filepath.Join(m.root, "sys/class/power_supply/ac/online")
	for in, want := range map[string]hw.PowerSource{"1\n": hw.Mains, "0\n": hw.Battery} {
		if err := os.WriteFile(online, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Power().Source(); err != nil || got != want {
			t.Errorf("Source() with online=%q = %v, %v, want %v", in, got, err, want)
		}
	}
	if err := os.WriteFile(online, []byte("maybe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Power().Source(); !errors.Is(err, ErrPower) {
		t.Errorf("Source() with garbage = %v, want ErrPower", err)
	}
}

func TestBootControlOverTheNANDEnvironment(t *testing.T) {
	m := newFakeMeter(t)
	b, err := Open(boards.Config{Root: m.root}, m.opener())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bc := b.Boot()
	if _, err := bc.Load(); err == nil {
		t.Errorf("Load on blank NAND = nil error, want one (no valid copy)")
	}
	// The factory image provisions the environment.
	store, err := b.EnvStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ubootenv.Env{"bootcmd": "run meterupd", "meterupd_order": "A", "meterupd_left_A": "3"}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	want := hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3, hw.SlotB: 1}}
	if err := bc.Store(want); err != nil {
		t.Fatalf("Store = %v", err)
	}
	got, err := bc.Load()
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if len(got.Order) != 2 || got.Order[0] != hw.SlotB || got.Left[hw.SlotB] != 1 || got.Left[hw.SlotA] != 3 {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}
	for _, p := range []string{"NAND.u-boot-env", "NAND.u-boot-env.backup1"} {
		if c := m.chips[p]; c == nil || c.Programs[0] == 0 {
			t.Errorf("environment copy %s never programmed", p)
		}
	}
}

func TestDetectedFromDeviceTree(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "proc", "device-tree")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compatible"), boards.FormatCompatible(append(Compatible, "ti,am33xx")), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := boards.Detect(boards.Config{Root: root}); got != Name || err != nil {
		t.Errorf("Detect() = %q, %v, want %q", got, err, Name)
	}
}

func TestProbe(t *testing.T) {
	m := newFakeMeter(t)
	if ok, err := Probe(boards.Config{Root: m.root}); !ok || err != nil {
		t.Errorf("Probe(our layout) = %v, %v, want true, nil", ok, err)
	}
	write := func(parts []mtd.Partition) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(m.root, "proc", "mtd"), []byte(mtd.Format(parts)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write([]mtd.Partition{{Index: 0, Size: 0x100000, EraseSize: EraseSize, Name: "rootfs"}})
	if ok, err := Probe(boards.Config{Root: m.root}); ok || err != nil {
		t.Errorf("Probe(other layout) = %v, %v, want false, nil", ok, err)
	}
	write([]mtd.Partition{{Index: 0, Size: 0x100000, EraseSize: EraseSize, Name: hw.PartJournal}})
	if _, err := Probe(boards.Config{Root: m.root}); !errors.Is(err, ErrLayout) {
		t.Errorf("Probe(journal only) = %v, want ErrLayout", err)
	}
	if ok, err := Probe(boards.Config{Root: t.TempDir()}); ok || err != nil {
		t.Errorf("Probe(no /proc/mtd) = %v, %v, want false, nil", ok, err)
	}
}
