package shadow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStreamRoundTrip(t *testing.T) {
	g := StreamGet{Stream: "em300-2.0", Offset: 8192, BlockSize: 1024}
	for _, i := range []int{0, 3, 17} {
		g.Want(i)
	}
	b, err := g.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStreamGet(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	if got.Blocks() != 3 || !got.Wants(17) || got.Wants(1) {
		t.Fatalf("bitmap %x: %d blocks", got.Bitmap, got.Blocks())
	}
	// A 1 KiB block costs its bytes and a few of framing.
	d := StreamData{Stream: "em300-2.0", Offset: 9216, Data: bytes.Repeat([]byte{7}, 1024)}
	b, err = d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if over := len(b) - 1024; over > 32 {
		t.Errorf("a 1024-byte block costs %d bytes of framing", over)
	}
	gd, err := ParseStreamData(b)
	if err != nil || !bytes.Equal(gd.Data, d.Data) || gd.Offset != d.Offset {
		t.Fatalf("ParseStreamData = %+v, %v", gd, err)
	}
}

func TestStreamRefuse(t *testing.T) {
	for _, g := range []StreamGet{
		{Stream: "", Offset: 0, BlockSize: 512, Bitmap: []byte{1}},
		{Stream: "../x", Offset: 0, BlockSize: 512, Bitmap: []byte{1}},
		{Stream: "s", Offset: -1, BlockSize: 512, Bitmap: []byte{1}},
		{Stream: "s", Offset: 0, BlockSize: 0, Bitmap: []byte{1}},
		{Stream: "s", Offset: 0, BlockSize: MaxStreamBlock + 1, Bitmap: []byte{1}},
		{Stream: "s", Offset: 0, BlockSize: 512},
		{Stream: "s", Offset: 0, BlockSize: 512, Bitmap: make([]byte, MaxStreamWindow/8+1)},
	} {
		if _, err := g.Encode(); !errors.Is(err, ErrStream) {
			t.Errorf("Encode(%+v) = %v, want ErrStream", g, err)
		}
	}
	for _, b := range [][]byte{
		nil,
		{0xff},
		bytes.Repeat([]byte{0x81}, 100), // deep arrays
		append([]byte{0x5a, 0x7f, 0xff, 0xff, 0xff}, 0), // a byte string claiming 2 GiB
		make([]byte, maxStreamMsg+1),
	} {
		if _, err := ParseStreamData(b); !errors.Is(err, ErrStream) {
			t.Errorf("ParseStreamData(% x…) = %v, want ErrStream", b[:min(len(b), 8)], err)
		}
		if _, err := ParseStreamGet(b); !errors.Is(err, ErrStream) {
			t.Errorf("ParseStreamGet(% x…) = %v, want ErrStream", b[:min(len(b), 8)], err)
		}
	}
}

func streamSeeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "stream", "*.cbor"))
	if len(paths) == 0 {
		f.Fatal("no seeds in testdata/stream")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// TestStreamSeeds writes the fuzz seeds (go test -run StreamSeeds -update
// is not needed: they are encoded here and must parse).
func TestStreamSeeds(t *testing.T) {
	g := StreamGet{Stream: "pkg-1", Offset: 4096, BlockSize: 1024, Bitmap: []byte{0xff, 0x01}}
	d := StreamData{Stream: "pkg-1", Offset: 4096, Data: []byte("block")}
	gb, _ := g.Encode()
	db, _ := d.Encode()
	for name, b := range map[string][]byte{"get.cbor": gb, "data.cbor": db} {
		want, err := os.ReadFile(filepath.Join("testdata", "stream", name))
		if err != nil || !bytes.Equal(want, b) {
			if err := os.MkdirAll(filepath.Join("testdata", "stream"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", "stream", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Errorf("testdata/stream/%s was stale; rewritten: commit it", name)
		}
	}
}

func FuzzParseStreamGet(f *testing.F) {
	streamSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseStreamGet(b)
		if err != nil {
			return
		}
		again, err := g.Encode()
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		g2, err := ParseStreamGet(again)
		if err != nil || !cmp.Equal(g, g2) {
			t.Fatalf("round trip: %+v, %v", g2, err)
		}
	})
}

func FuzzParseStreamData(f *testing.F) {
	streamSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseStreamData(b)
		if err != nil {
			return
		}
		if len(d.Data) > MaxStreamBlock+128 {
			t.Fatalf("accepted %d data bytes", len(d.Data))
		}
	})
}
