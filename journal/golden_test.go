package journal

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"meterupd/journal/internal/flashtest"
)

var update = flag.Bool("update", false, "rewrite the golden journal images in testdata/")

// Golden images use a small geometry: 4 erase blocks of 512 bytes, a 16-byte
// write unit, so 2 areas of 1 KiB.
const (
	goldenSize  = 2048
	goldenErase = 512
	goldenWrite = 16
)

func goldenFlash(seed uint64) *flashtest.Flash {
	return flashtest.New(goldenSize, goldenErase, goldenWrite, seed)
}

// goldenImages builds each image and says what Open must make of it: an
// error, or the counter of the newest record.
var goldenImages = []struct {
	name  string
	build func(t *testing.T) []byte
	err   error
	n     int
}{
	{"v1-records.img", func(t *testing.T) []byte {
		f := goldenFlash(1)
		j := mustFormat(t, f, sv(1, 0, 8))
		commitN(t, j, 2, 5, 8)
		return f.Bytes()
	}, nil, 5},
	{"v1-area-switch.img", func(t *testing.T) []byte {
		f := goldenFlash(1)
		j := mustFormat(t, f, sv(1, 0, 100))
		commitN(t, j, 2, 11, 100)
		if j.cur != 1 {
			t.Fatalf("golden area switch: newest in area %d, want 1", j.cur)
		}
		return f.Bytes()
	}, nil, 11},
	{"v1-torn-tail.img", func(t *testing.T) []byte {
		f := goldenFlash(3)
		j := mustFormat(t, f, sv(1, 0, 40))
		commitN(t, j, 2, 4, 40)
		f.PowerOn()
		f.CutAt(1, flashtest.CutTorn)
		if err := j.Commit(sv(5, 0, 40)); err == nil {
			t.Fatal("cut did not fire")
		}
		f.PowerOn()
		return f.Bytes()
	}, nil, 4},
	{"v1-garbage-tail.img", func(t *testing.T) []byte {
		f := goldenFlash(4)
		j := mustFormat(t, f, sv(1, 0, 40))
		commitN(t, j, 2, 3, 40)
		f.PowerOn()
		f.CutAt(1, flashtest.CutGarbage)
		_ = j.Commit(sv(4, 0, 40))
		f.PowerOn()
		return f.Bytes()
	}, nil, 3},
	{"erased.img", func(t *testing.T) []byte { return goldenFlash(1).Bytes() }, ErrEmpty, 0},
	{"foreign.img", func(t *testing.T) []byte {
		img := goldenFlash(1).Bytes()
		copy(img, "#!/bin/sh\n# not a journal: a script someone flashed to the wrong partition\n")
		return img
	}, ErrForeign, 0},
	{"corrupt.img", func(t *testing.T) []byte {
		f := goldenFlash(1)
		mustFormat(t, f, sv(1, 0, 8))
		img := f.Bytes()
		img[HeaderSize+2] ^= 0x10 // payload bit: the only record fails its CRC
		return img
	}, ErrCorrupt, 0},
	{"newer-v2.img", func(t *testing.T) []byte {
		f := goldenFlash(1)
		j := mustFormat(t, f, sv(1, 0, 8))
		commitN(t, j, 2, 2, 8)
		img := f.Bytes()
		// A version 2 record after ours, with valid CRCs.
		g, _ := layout(f)
		rec := encodeRecord(g, 3, []byte{0xa1, 0x61, 'n', 0x03})
		rec[4] = 2
		putHeaderCRC(rec)
		copy(img[j.end:], rec)
		return img
	}, ErrNewerVersion, 0},
}

func mustFormat(t *testing.T, f *flashtest.Flash, v state) *Journal {
	t.Helper()
	j, err := Format(f, v, Options{})
	if err != nil {
		t.Fatalf("Format: %v", err)
	}
	return j
}

func commitN(t *testing.T, j *Journal, from, to, pad int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := j.Commit(sv(i, 0, pad)); err != nil {
			t.Fatalf("Commit(%d): %v", i, err)
		}
	}
}

// TestGoldenImages opens the checked-in journal images: the on-flash format
// of version 1 must stay readable by every later agent. Run with -update to
// regenerate them (only when the format version changes).
func TestGoldenImages(t *testing.T) {
	for _, g := range goldenImages {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", g.name)
			if *update {
				if err := os.WriteFile(path, g.build(t), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f := goldenFlash(1)
			f.Load(img)
			j, err := Open(f, Options{})
			if g.err != nil {
				if !errors.Is(err, g.err) {
					t.Fatalf("Open(%s) = %v, want %v", g.name, err, g.err)
				}
				if !bytes.Equal(f.Bytes(), img) {
					t.Fatalf("Open(%s) changed the flash", g.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s) = %v", g.name, err)
			}
			if got := load(t, j); got.N != g.n {
				t.Errorf("Open(%s): Load = %d, want %d", g.name, got.N, g.n)
			}
		})
	}
}
