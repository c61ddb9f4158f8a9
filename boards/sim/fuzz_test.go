package sim

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/boards/hw"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldens are the on-flash and on-disk formats as this version writes them.
// They are stored formats: a change here breaks nodes in the field, so
// the golden files change only with a format version bump.
func goldens(t testing.TB) map[string][]byte {
	t.Helper()
	hdr, err := ImageHeader{Version: "2.4.1", Size: 4 << 20, CRC: 0x1badb002, Marks: []string{MarkUnhealthy}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"bootrec-factory.bin": mustRec(t, hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3}}, 1),
		"bootrec-trial.bin":   mustRec(t, hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3, hw.SlotB: 1}}, 0x1234),
		"bootrec-all.bin":     mustRec(t, hw.BootState{Order: []hw.Slot{hw.SlotF, hw.SlotA, hw.SlotB}, Left: map[hw.Slot]int{hw.SlotA: 7, hw.SlotB: 0, hw.SlotF: 1}}, 0xFFFFFFFF),
		"board.json":          encodeState(DefaultGeometry()),
		"image-header.bin":    hdr,
	}
}

func TestGolden(t *testing.T) {
	for name, want := range goldens(t) {
		p := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: this version writes\n% x\nthe golden file holds\n% x", name, want, got)
		}
	}
}

func seedFrom(f *testing.F, prefix string) {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() && len(e.Name()) >= len(prefix) && e.Name()[:len(prefix)] == prefix {
			data, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzDecodeBootState: the boot record decoder never panics, and what it
// accepts re-encodes to the same bytes.
func FuzzDecodeBootState(f *testing.F) {
	seedFrom(f, "bootrec-")
	f.Add(bytes.Repeat([]byte{0xFF}, bootRecSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(data []byte) {
			s, seq, err := decodeBootState(data)
			if err != nil {
				return
			}
			rec, err := encodeBootState(s, seq)
			if err != nil {
				t.Fatalf("decoded %+v does not re-encode: %v", s, err)
			}
			if !bytes.Equal(rec, data[:bootRecSize]) {
				t.Fatalf("round trip:\n% x\n% x", rec, data[:bootRecSize])
			}
		}
		check(data)
		// The CRC stops most mutations at the door; check the field
		// rules too, with the CRC made right.
		if len(data) >= bootRecSize {
			fixed := bytes.Clone(data)
			binary.BigEndian.PutUint32(fixed[20:], crc32.ChecksumIEEE(fixed[:20]))
			check(fixed)
		}
	})
}

// FuzzDecodeState: board.json never panics the loader, and an accepted
// geometry is valid and survives a round trip.
func FuzzDecodeState(f *testing.F) {
	seedFrom(f, "board")
	f.Add([]byte(`{"format":1,"geometry":{"erase_size":64,"write_size":1,"slot_size":4096,"journal_size":128,"common_size":64,"attempts":1}}`))
	f.Add([]byte(`{"format":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := decodeState(data)
		if err != nil {
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("accepted invalid geometry %+v: %v", g, err)
		}
		g2, err := decodeState(encodeState(g))
		if err != nil || g2 != g {
			t.Fatalf("round trip %+v -> %+v, %v", g, g2, err)
		}
	})
}

// FuzzParseImageHeader: the header parser never panics, and an accepted
// header marshals back to the same block.
func FuzzParseImageHeader(f *testing.F) {
	seedFrom(f, "image-")
	f.Add(Image(HeaderSize, "v", MarkUnbootable, MarkUnhealthy))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < HeaderSize { // the fuzzer's short inputs: pad like erased-but-zeroed header space
			data = append(bytes.Clone(data), make([]byte, HeaderSize-len(data))...)
		}
		h, err := ParseImageHeader(data)
		if err != nil {
			return
		}
		blk, err := h.Marshal()
		if err != nil {
			t.Fatalf("parsed %+v does not marshal: %v", h, err)
		}
		if !bytes.Equal(blk, data[:HeaderSize]) {
			h2, _ := ParseImageHeader(blk)
			t.Fatalf("round trip differs: %s", cmp.Diff(h, h2))
		}
	})
}
