package flashfake

import (
	"bytes"
	"errors"
	"testing"

	"meterupd/boards/hw"
)

func TestFlashRules(t *testing.T) {
	f := New(4*256, 256, 4, 1)
	if got := f.Bytes(); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 1024)) {
		t.Fatal("new flash is not erased")
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"program misaligned offset", func() error { _, err := f.WriteAt([]byte{0, 0, 0, 0}, 2); return err }, hw.ErrAlignment},
		{"program misaligned length", func() error { _, err := f.WriteAt([]byte{0, 0}, 0); return err }, hw.ErrAlignment},
		{"program past end", func() error { _, err := f.WriteAt([]byte{0, 0, 0, 0}, 1024); return err }, hw.ErrAlignment},
		{"erase misaligned", func() error { return f.Erase(128, 256) }, hw.ErrAlignment},
		{"program clears bits", func() error { _, err := f.WriteAt([]byte{0xF0, 0x0F, 0x00, 0xFF}, 0); return err }, nil},
		{"program clears more bits", func() error { _, err := f.WriteAt([]byte{0x80, 0x0F, 0x00, 0xFF}, 0); return err }, nil},
		{"program sets a bit", func() error { _, err := f.WriteAt([]byte{0xC0, 0x0F, 0x00, 0xFF}, 0); return err }, hw.ErrNotErased},
		{"erase", func() error { return f.Erase(0, 256) }, nil},
		{"program after erase", func() error { _, err := f.WriteAt([]byte{0xC0, 0, 0, 0}, 0); return err }, nil},
	} {
		before := f.Bytes()
		err := tc.op()
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && !bytes.Equal(before, f.Bytes()) {
			t.Fatalf("%s: a failed operation changed the flash", tc.name)
		}
	}
	if f.Violations != 5 {
		t.Errorf("Violations = %d, want 5", f.Violations)
	}
	got := make([]byte, 4)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, []byte{0xC0, 0, 0, 0}) {
		t.Errorf("ReadAt = % x, %v; want c0 00 00 00", got, err)
	}
}

func TestNANDProgramsPageOnce(t *testing.T) {
	f := New(2*1024, 1024, 16, 1)
	f.SetNAND(true)
	p := bytes.Repeat([]byte{0xFF}, 16)
	p[0] = 0x7F
	if _, err := f.WriteAt(p, 0); err != nil {
		t.Fatal(err)
	}
	p[0] = 0x3F // only clears bits: fine on NOR, not on NAND
	if _, err := f.WriteAt(p, 0); !errors.Is(err, hw.ErrNotErased) {
		t.Errorf("second program of a NAND page = %v, want ErrNotErased", err)
	}
}

func TestCutModes(t *testing.T) {
	p := bytes.Repeat([]byte{0x00}, 64)
	for _, tc := range []struct {
		mode             CutMode
		wantAll, wantNon bool // all programmed / nothing programmed
	}{
		{CutBefore, false, true},
		{CutAfter, true, false},
		{CutTorn, false, false},
	} {
		f := New(2*256, 256, 1, 3)
		f.CutAt(1, tc.mode)
		if _, err := f.WriteAt(p, 0); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("%v: WriteAt = %v, want ErrPowerCut", tc.mode, err)
		}
		if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("%v: ReadAt while cut = %v, want ErrPowerCut", tc.mode, err)
		}
		f.PowerOn()
		got := f.Bytes()[:64]
		all, none := bytes.Equal(got, p), bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 64))
		if all != tc.wantAll || (tc.wantNon && !none) {
			t.Errorf("%v: programmed % x", tc.mode, got[:8])
		}
		if tc.mode == CutTorn && (all || got[0] == 0xFF && none) {
			t.Errorf("torn: nothing torn: % x", got)
		}
	}
	// A torn erase leaves part of the block unerased.
	f := New(2*256, 256, 1, 3)
	if _, err := f.WriteAt(bytes.Repeat([]byte{0}, 256), 0); err != nil {
		t.Fatal(err)
	}
	f.CutAt(2, CutTorn)
	if err := f.Erase(0, 256); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("Erase = %v, want ErrPowerCut", err)
	}
	f.PowerOn()
	if bytes.Equal(f.Bytes()[:256], bytes.Repeat([]byte{0xFF}, 256)) {
		t.Error("torn erase erased the whole block")
	}
}

func TestFaults(t *testing.T) {
	f := New(4*256, 256, 1, 1)
	f.FailAt(2, false)
	ops := []error{}
	for i := 0; i < 3; i++ {
		_, err := f.WriteAt([]byte{0xFE}, int64(i))
		ops = append(ops, err)
	}
	if ops[0] != nil || !errors.Is(ops[1], ErrIO) || ops[2] != nil {
		t.Errorf("fail once at op 2: %v", ops)
	}
	f.FailAt(1, true)
	if err := f.Erase(0, 256); !errors.Is(err, ErrIO) {
		t.Errorf("persistent fault: Erase = %v", err)
	}
	f.FailAt(0, false)
	f.SetBad(256, BadSilentErase)
	if _, err := f.WriteAt([]byte{0}, 256); err != nil {
		t.Fatal(err)
	}
	if err := f.Erase(256, 256); err != nil {
		t.Fatal(err)
	}
	if f.Bytes()[256] != 0 {
		t.Error("silent erase erased")
	}
	f.SetBad(512, BadProgram)
	if _, err := f.WriteAt([]byte{0}, 512); !errors.Is(err, hw.ErrBadBlock) {
		t.Errorf("bad block program = %v, want ErrBadBlock", err)
	}
}

// TestKinds: the program rule of each kind of part, and the physical bytes
// of a part erased to 0x00.
func TestKinds(t *testing.T) {
	ff := bytes.Repeat([]byte{0xFF}, 4)
	for _, tc := range []struct {
		kind    Kind
		first   []byte
		second  []byte
		wantErr error
		raw     []byte // the first 4 physical bytes afterwards
	}{
		{NORErasedFF, []byte{0xF0, 0xF0, 0xF0, 0xF0}, []byte{0x30, 0x30, 0x30, 0x30}, nil, []byte{0x30, 0x30, 0x30, 0x30}},
		{NORErased00, []byte{0xF0, 0xF0, 0xF0, 0xF0}, []byte{0x30, 0x30, 0x30, 0x30}, nil, []byte{0xCF, 0xCF, 0xCF, 0xCF}},
		{NORErased00, []byte{0x0F, 0x0F, 0x0F, 0x0F}, []byte{0x1F, 0x0F, 0x0F, 0x0F}, hw.ErrNotErased, []byte{0xF0, 0xF0, 0xF0, 0xF0}},
		{NAND, []byte{0xF0, 0xF0, 0xF0, 0xF0}, []byte{0x30, 0x30, 0x30, 0x30}, hw.ErrNotErased, []byte{0xF0, 0xF0, 0xF0, 0xF0}},
		{NAND, ff, []byte{0x30, 0x30, 0x30, 0x30}, hw.ErrNotErased, ff},
	} {
		f := New(2*256, 256, 4, 1)
		f.SetKind(tc.kind)
		if _, err := f.WriteAt(tc.first, 0); err != nil {
			t.Fatalf("%s: first program: %v", tc.kind, err)
		}
		if _, err := f.WriteAt(tc.second, 0); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s % x then % x: err = %v, want %v", tc.kind, tc.first, tc.second, err, tc.wantErr)
		}
		if got := f.Raw()[:4]; !bytes.Equal(got, tc.raw) {
			t.Errorf("%s: raw = % x, want % x", tc.kind, got, tc.raw)
		}
		if err := f.Erase(0, 256); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(tc.second, 0); err != nil {
			t.Errorf("%s: program after erase: %v", tc.kind, err)
		}
		if e := f.Raw()[8]; e != tc.kind.Erased() {
			t.Errorf("%s: erased byte reads %#02x physically, want %#02x", tc.kind, e, tc.kind.Erased())
		}
	}
}
