package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// hostileCBOR are payloads a damaged or forged record could carry.
// RELIABILITY.md B.29, B.30, B.31.
var hostileCBOR = []struct {
	name string
	data []byte
}{
	{"nested-100", append(bytes.Repeat([]byte{0x81}, 100), 0x00)},
	{"array-2^40-claim", []byte{0x9B, 0x00, 0x00, 0x42, 0xFA, 0x42, 0xFA, 0x42, 0xFA, 0x42}},
	{"map-2^32-claim", []byte{0xBA, 0xFF, 0xFF, 0xFF, 0xFF}},
	{"array-2000", append([]byte{0x99, 0x07, 0xD0}, bytes.Repeat([]byte{0x00}, 2000)...)},
	{"dup-key", []byte{0xA2, 0x61, 'n', 0x01, 0x61, 'n', 0x02}},
	{"indefinite-array", []byte{0x9F, 0x01, 0xFF}},
	{"indefinite-bytes", []byte{0x5F, 0x41, 0x00, 0xFF}},
	{"tag", []byte{0xC1, 0x1A, 0x00, 0x00, 0x00, 0x01}},
	{"trailing", []byte{0xA0, 0x00}},
	{"bytes-len-past-end", []byte{0x5A, 0x7F, 0xFF, 0xFF, 0xFF, 0x00}},
	{"bad-utf8", []byte{0x61, 0xFF}},
	{"empty", nil},
}

func TestDecodeRejectsHostile(t *testing.T) {
	for _, tc := range hostileCBOR {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := Decode(tc.data, &v); !errors.Is(err, ErrDecode) {
				t.Errorf("Decode(% x) = %v, want ErrDecode", tc.data, err)
			}
		})
	}
	big := make([]byte, MaxRecordLimit+1)
	var v any
	if err := Decode(big, &v); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	want := sv(42, 3, 100)
	data, err := encMode.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got state
	if err := Decode(data, &got); err != nil {
		t.Fatal(err)
	}
	if !same(got, want) {
		t.Errorf("Decode(Marshal(%v)) = %v", want.N, got.N)
	}
}

// goldenSeeds returns the checked-in journal images.
func goldenSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.img"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata images: %v", err)
	}
	m := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(p)] = b
	}
	return m
}

// FuzzDecode decodes arbitrary payloads with the journal's limits; whatever
// decodes into the state type re-encodes and decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, tc := range hostileCBOR {
		f.Add(tc.data)
	}
	for _, img := range goldenSeeds(f) {
		fl := goldenFlash(1)
		fl.Load(img)
		j, err := Open(fl, Options{})
		if err != nil {
			continue
		}
		rs, err := j.Records()
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range rs {
			f.Add(r.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		_ = Decode(data, &v)
		var s state
		if err := Decode(data, &s); err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode = %v: not a journal error", err)
			}
			return
		}
		re, err := encMode.Marshal(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var s2 state
		if err := Decode(re, &s2); err != nil {
			t.Fatalf("Decode(re-encoded) = %v", err)
		}
		if !same(s, s2) {
			t.Fatalf("round trip: %+v != %+v", s, s2)
		}
	})
}

// fixCRCs recomputes the CRCs of every record-shaped header in each area
// of img, following the record lengths while they are plausible.
func fixCRCs(img []byte, areaSize, ws int) {
	for base := 0; base+areaSize <= len(img); base += areaSize {
		for off := 0; off+HeaderSize <= areaSize; {
			h := img[base+off:]
			if !bytes.Equal(h[:4], magic[:]) {
				break
			}
			n := int(binary.LittleEndian.Uint32(h[20:]))
			if n < HeaderSize || n%ws != 0 || off+n > areaSize {
				putHeaderCRC(h[:HeaderSize])
				break
			}
			binary.LittleEndian.PutUint32(h[24:], crcC(h[HeaderSize:n]))
			putHeaderCRC(h[:HeaderSize])
			off += n
		}
	}
}

// FuzzOpen opens arbitrary 2 KiB flash images (2 areas of 1 KiB, 16-byte
// write unit), optionally with the records' CRCs fixed up. Open never writes and either refuses with a journal error or
// yields a journal whose next commit lands and reads back.
func FuzzOpen(f *testing.F) {
	for _, img := range goldenSeeds(f) {
		f.Add(img, false)
		f.Add(img, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		fl := goldenFlash(1)
		img := fl.Bytes()
		copy(img, data)
		if fix {
			// Let the fuzzer reach the checks behind the CRCs.
			fixCRCs(img, goldenSize/2, goldenWrite)
		}
		fl.Load(img)
		j, err := Open(fl, Options{})
		if !bytes.Equal(fl.Bytes(), img) {
			t.Fatal("Open changed the flash")
		}
		if err != nil {
			for _, want := range []error{ErrEmpty, ErrForeign, ErrCorrupt, ErrNewerVersion, ErrTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Open = %v: not a journal error", err)
		}
		rs, err := j.Records()
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		if len(rs) == 0 || rs[len(rs)-1].Seq != j.Seq() {
			t.Fatalf("Records: %d records, newest does not match Seq %d", len(rs), j.Seq())
		}
		var v any
		if err := j.Load(&v); err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("Load = %v", err)
		}
		old := j.Seq()
		want := sv(77, 1, 5)
		if err := j.Commit(want); err != nil {
			t.Fatalf("Commit on an opened journal: %v", err)
		}
		if fl.Violations != 0 {
			t.Fatalf("%d flash rule violations", fl.Violations)
		}
		j2, err := Open(fl, Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got := load(t, j2); !same(got, want) || j2.Seq() <= old {
			t.Fatalf("reopen: Load = %d seq %d, want 77 seq > %d", got.N, j2.Seq(), old)
		}
	})
}
