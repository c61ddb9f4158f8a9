package ubootenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/ubootenv/ubootenvtest"
)

func TestOpenMTDThroughOpener(t *testing.T) {
	devs := map[string]*ubootenvtest.Flash{
		"/dev/mtd1": ubootenvtest.NewNAND(0x8000, 0x4000, 512),
		"/dev/mtd2": ubootenvtest.NewNAND(0x8000, 0x4000, 512),
	}
	cfg, err := ParseConfig(strings.NewReader("/dev/mtd1 0x0 0x2000 0x4000\n/dev/mtd2 0x4000 0x2000 0x4000\n"))
	if err != nil {
		t.Fatal(err)
	}
	opener := WithFlashOpener(func(dev string) (hw.Flash, error) {
		f, ok := devs[dev]
		if !ok {
			return nil, os.ErrNotExist
		}
		return f, nil
	})
	s, err := Open(cfg, opener)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if !s.Redundant() || s.FlagStyle() != Counter {
		t.Errorf("Redundant, FlagStyle = %v, %v, want true, counter (NAND)", s.Redundant(), s.FlagStyle())
	}
	want := Env{"a": "1"}
	for i := 0; i < 3; i++ {
		want["i"] = string(rune('0' + i))
		if err := s.Save(want); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	if got, err := s.Load(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %v, %v, want %v", got, err, want)
	}
	// Saves 1 and 3 went to mtd1 at 0x0, save 2 to mtd2 at 0x4000; the
	// first save onto blank flash starts the serial at 1.
	if h := ReadHeader(devs["/dev/mtd1"].Mem[:0x2000], true); !h.Valid || h.Flag != 3 {
		t.Errorf("mtd1 header = %+v, want valid serial 3", h)
	}
	if h := ReadHeader(devs["/dev/mtd2"].Mem[0x4000:0x6000], true); !h.Valid || h.Flag != 2 {
		t.Errorf("mtd2 header = %+v, want valid serial 2", h)
	}

	if _, err := Open(cfg); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open(mtd) without opener = %v, want ErrUnsupported", err)
	}
	ubi := Config{Copies: []Location{{Device: "/dev/ubi0:env", Size: 0x2000}}}
	if _, err := Open(ubi, opener); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open(ubi) = %v, want ErrUnsupported", err)
	}
}

func TestNewFlashGeometry(t *testing.T) {
	nor := ubootenvtest.NewNOR(0x4000, 0x1000)
	nand := ubootenvtest.NewNAND(0x4000, 0x1000, 512)
	tests := []struct {
		name   string
		size   int64
		copies []FlashCopy
		opts   []Option
	}{
		{"misaligned offset", 0x800, []FlashCopy{{Flash: nor, Offset: 0x800}}, nil},
		{"past the end", 0x1000, []FlashCopy{{Flash: nor, Offset: 0x4000}}, nil},
		{"copies share a block", 0x800, []FlashCopy{{Flash: nor, Offset: 0}, {Flash: nor, Offset: 0, Span: 0x1000}}, nil},
		{"span too small", 0x1800, []FlashCopy{{Flash: nor, Offset: 0, Span: 0x1000}}, nil},
		{"NOR flags on NAND", 0x800, []FlashCopy{{Flash: nand, Offset: 0}, {Flash: nand, Offset: 0x1000}}, []Option{WithFlagStyle(ActiveObsolete)}},
		{"three copies", 0x800, []FlashCopy{{Flash: nor}, {Flash: nor, Offset: 0x1000}, {Flash: nor, Offset: 0x2000}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewFlash(tt.size, tt.copies, tt.opts...); !errors.Is(err, ErrGeometry) {
				t.Errorf("NewFlash = %v, want ErrGeometry", err)
			}
		})
	}
	if _, err := NewFlash(MaxSize+1, []FlashCopy{{Flash: nor}}); !errors.Is(err, ErrSize) {
		t.Errorf("NewFlash(too big) = %v, want ErrSize", err)
	}
	s, err := NewFlash(0x800, []FlashCopy{{Flash: nor, Offset: 0}, {Flash: nor, Offset: 0x1000}}, WithFlagStyle(Counter))
	if err != nil || s.FlagStyle() != Counter {
		t.Errorf("NewFlash(NOR, Counter forced) = %v, %v", s, err)
	}
}

// deafFlash accepts programs but keeps nothing: a worn block.
type deafFlash struct{ *ubootenvtest.Flash }

func (d deafFlash) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

func TestSaveReadBackMismatch(t *testing.T) {
	f := deafFlash{ubootenvtest.NewNAND(0x2000, 0x1000, 512)}
	s, err := NewFlash(0x1000, []FlashCopy{{Flash: f, Offset: 0}, {Flash: f, Offset: 0x1000}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(Env{"a": "1"}); !errors.Is(err, ErrVerify) {
		t.Errorf("Save on a flash that drops writes = %v, want ErrVerify", err)
	}
}

func TestSingleCopy(t *testing.T) {
	f := ubootenvtest.NewNOR(0x2000, 0x1000)
	s, err := NewFlash(0x1000, []FlashCopy{{Flash: f, Offset: 0x1000}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNoValidCopy) || strings.Contains(err.Error(), "%!") {
		t.Errorf("Load(erased) = %v, want ErrNoValidCopy in a clean sentence", err)
	}
	if err := s.Update(func(Env) error { return nil }); !errors.Is(err, ErrNoValidCopy) {
		t.Errorf("Update(erased) = %v, want ErrNoValidCopy", err)
	}
	for _, v := range []string{"1", "2"} {
		if err := s.Save(Env{"v": v}); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if got, err := s.Load(); err != nil || got["v"] != v {
			t.Errorf("Load = %v, %v, want v=%s", got, err, v)
		}
	}
	if _, _, err := Decode(f.Mem[0x1000:], false); err != nil {
		t.Errorf("single copy not at its offset: %v", err)
	}
}

func TestFileNegativeOffset(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "boot1")
	if err := os.WriteFile(img, make([]byte, 0x3000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Copies: []Location{{Device: img, Offset: -0x2000, Size: 0x1000}, {Device: img, Offset: -0x1000, Size: 0x1000}}}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(Env{"x": "y"}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	b, _ := os.ReadFile(img)
	if env, h, err := Decode(b[0x1000:0x2000], true); err != nil || env["x"] != "y" || h.Flag != 1 {
		t.Errorf("copy at end-0x2000 = %v, %+v, %v", env, h, err)
	}
	short := Config{Copies: []Location{{Device: img, Offset: -0x4000, Size: 0x1000}}}
	s, _ = Open(short)
	if _, err := s.Load(); err == nil {
		t.Errorf("Load before the start of the device succeeded")
	}
}

func TestFileMissing(t *testing.T) {
	s, err := Open(Config{Copies: []Location{{Device: filepath.Join(t.TempDir(), "none"), Size: 0x100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNoValidCopy) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing file) = %v, want ErrNoValidCopy wrapping ErrNotExist", err)
	}
}

// TestEMMCBootPartitionForceRO: an eMMC boot partition is made writable
// through sysfs force_ro for the save and protected again afterwards; if
// it cannot be unlocked, nothing is written.
func TestEMMCBootPartitionForceRO(t *testing.T) {
	root := t.TempDir()
	sys := filepath.Join(root, "sys", "class", "block", "mmcblk0boot1")
	dev := filepath.Join(root, "dev", "mmcblk0boot1")
	for _, d := range []string{sys, filepath.Dir(dev)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	forceRO := filepath.Join(sys, "force_ro")
	if err := os.WriteFile(forceRO, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dev, make([]byte, 0x2000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Copies: []Location{{Device: dev, Offset: -0x2000, Size: 0x1000}, {Device: dev, Offset: -0x1000, Size: 0x1000}}}
	s, err := Open(cfg, WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(Env{"a": "1"}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if b, _ := os.ReadFile(forceRO); string(b) != "1" {
		t.Errorf("force_ro after Save = %q, want 1", b)
	}
	if got, err := s.Load(); err != nil || got["a"] != "1" {
		t.Errorf("Load = %v, %v", got, err)
	}
	// force_ro that cannot be written: the save fails before touching
	// the device.
	before, _ := os.ReadFile(dev)
	if err := os.Remove(forceRO); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(forceRO, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(Env{"a": "2"}); err == nil {
		t.Errorf("Save with a stuck force_ro succeeded")
	}
	if after, _ := os.ReadFile(dev); !bytes.Equal(before, after) {
		t.Errorf("Save wrote the device although force_ro could not be cleared")
	}
}
