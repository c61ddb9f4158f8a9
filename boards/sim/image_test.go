package sim

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestImage(t *testing.T) {
	const size = 1 << 20
	v1, v1again, v2 := Image(size, "1.0.0"), Image(size, "1.0.0"), Image(size, "1.1.0")
	if len(v1) != size {
		t.Fatalf("len(Image(%d)) = %d", size, len(v1))
	}
	if !bytes.Equal(v1, v1again) {
		t.Error("Image is not deterministic")
	}
	diff := 0
	for i := HeaderSize; i < size; i++ {
		if v1[i] != v2[i] {
			diff++
		}
	}
	// Insertions shift the tail, so most bytes after the first one differ at
	// the same offset; what must hold is that the versions differ, and that
	// long stretches are equal (a delta has something to reuse).
	if diff == 0 {
		t.Error("versions 1.0.0 and 1.1.0 have the same body")
	}
	// Most 1 KiB chunks of one version are found in the next, shifted or not.
	a, b := v1[:256<<10], v2[:256<<10]
	found, chunks := 0, 0
	for o := HeaderSize; o+1024 <= len(a); o += 1024 {
		chunks++
		if bytes.Contains(b, a[o:o+1024]) {
			found++
		}
	}
	if found < chunks*3/4 || found == chunks {
		t.Errorf("%d of %d 1 KiB chunks of 1.0.0 found in 1.1.0, want most but not all", found, chunks)
	}
	h, err := ParseImageHeader(v2)
	want := ImageHeader{Version: "1.1.0", Size: size, CRC: h.CRC}
	if err != nil || !cmp.Equal(h, want) {
		t.Errorf("ParseImageHeader(Image) = %+v, %v, want %+v", h, err, want)
	}
	h, err = ParseImageHeader(Image(0, "bad version\n", MarkUnhealthy, "x y"))
	want = ImageHeader{Version: "bad_version_", Size: HeaderSize, CRC: 0, Marks: []string{MarkUnhealthy, "x_y"}}
	if err != nil || !cmp.Equal(h, want) {
		t.Errorf("ParseImageHeader(Image(0, sanitised)) = %+v, %v, want %+v", h, err, want)
	}
}

func TestParseImageHeaderErrors(t *testing.T) {
	good, _ := ImageHeader{Version: "v1", Size: 8192, CRC: 0xdeadbeef, Marks: []string{"M"}}.Marshal()
	edit := func(old, new string) []byte {
		b := bytes.Clone(good)
		i := bytes.Index(b, []byte(old))
		copy(b[i:], new)
		return b
	}
	tests := []struct {
		name string
		blk  []byte
		want error
	}{
		{"erased", bytes.Repeat([]byte{0xFF}, HeaderSize), ErrNoImage},
		{"short", good[:100], ErrBadImage},
		{"size with leading zero", edit("size 8192", "size 08192"), ErrBadImage},
		{"size below header", edit("size 8192", "size 0100"), ErrBadImage},
		{"crc upper case", edit("deadbeef", "DEADBEEF"), ErrBadImage},
		{"bad mark", edit("marks M", "marks  "), ErrBadImage},
		{"padding not zero", edit("\n\n\x00", "\n\n\x01"), ErrBadImage},
		{"missing end", edit("\n\n\x00", "\nx\x00"), ErrBadImage},
	}
	for _, tt := range tests {
		if _, err := ParseImageHeader(tt.blk); !errors.Is(err, tt.want) {
			t.Errorf("%s: ParseImageHeader = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := (ImageHeader{Version: strings.Repeat("v", 65), Size: HeaderSize}).Marshal(); !errors.Is(err, ErrBadImage) {
		t.Errorf("Marshal(long version) = %v, want ErrBadImage", err)
	}
}
