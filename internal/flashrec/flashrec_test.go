package flashrec

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
)

var testMagic = [4]byte{'T', 'E', 'S', 'T'}

func TestEncodeParse(t *testing.T) {
	for _, ws := range []int64{1, 16, 4096} {
		p := []byte("payload")
		f := Encode(testMagic, 1, 42, p, ws)
		if int64(len(f))%ws != 0 {
			t.Errorf("ws %d: frame of %d bytes not padded", ws, len(f))
		}
		got, ok, err := Parse(f, testMagic, 1, 64)
		if !ok || err != nil || got.Seq != 42 || !bytes.Equal(got.Payload, p) {
			t.Errorf("Parse(Encode) = %+v, %v, %v", got, ok, err)
		}
		for i := range min(len(f), HeaderSize+len(p)) {
			g := bytes.Clone(f)
			g[i] ^= 0x10
			if _, ok, _ := Parse(g, testMagic, 1, 64); ok {
				t.Errorf("ws %d: byte %d flipped still parses", ws, i)
			}
		}
	}
	if _, _, err := Parse(Encode(testMagic, 2, 1, nil, 1), testMagic, 1, 64); !errors.Is(err, ErrNewerVersion) {
		t.Errorf("Parse(v2) = %v, want ErrNewerVersion", err)
	}
	if _, ok, _ := Parse(Encode(testMagic, 1, 1, make([]byte, 65), 1), testMagic, 1, 64); ok {
		t.Error("Parse accepted a payload over the cap")
	}
}

// cutFlash wraps a Mem and cuts the power at operation cut: torn (a random
// prefix programmed, a random part of an erase done) then dead.
type cutFlash struct {
	*Mem
	ops, cut int64
	rnd      *rand.Rand
}

var errCut = errors.New("power cut")

func (c *cutFlash) WriteAt(p []byte, off int64) (int, error) {
	c.ops++
	if c.ops > c.cut {
		return 0, errCut
	}
	if c.ops == c.cut {
		n := c.rnd.IntN(len(p) + 1)
		n = n / int(c.WriteUnit) * int(c.WriteUnit)
		c.Mem.WriteAt(p[:n], off)
		return 0, errCut
	}
	return c.Mem.WriteAt(p, off)
}

func (c *cutFlash) Erase(off, n int64) error {
	c.ops++
	if c.ops > c.cut {
		return errCut
	}
	if c.ops == c.cut {
		for i := off; i < off+n; i++ {
			if c.rnd.IntN(2) == 0 {
				c.B[i] = 0xFF
			}
		}
		return errCut
	}
	return c.Mem.Erase(off, n)
}

var _ hw.Flash = (*cutFlash)(nil)

// TestRingPowerCut appends across several area wraps with the power cut at
// every flash operation: after each cut the ring opens, its frames are
// contiguous and end at the last acknowledged frame (or the one being
// written), and appending goes on.
func TestRingPowerCut(t *testing.T) {
	cfg := RingConfig{Magic: testMagic, Version: 1, MaxPayload: 100}
	const total = 40
	for cut := int64(1); ; cut++ {
		for seed := range uint64(4) {
			m := NewMem(3*1024, 1024, 64)
			cf := &cutFlash{Mem: m, cut: cut, rnd: rand.New(rand.NewPCG(seed, uint64(cut)))}
			r, err := OpenRing(cf, cfg)
			if err != nil {
				t.Fatal(err)
			}
			acked := uint64(0)
			for i := 1; i <= total; i++ {
				if err := r.Append([]byte(fmt.Sprint("frame ", i))); err != nil {
					break
				}
				acked = uint64(i)
			}
			if acked == total {
				if seed == 0 {
					t.Logf("%d cut points checked", cut-1)
					return
				}
				continue
			}
			r, err = OpenRing(m, cfg)
			if err != nil {
				t.Fatalf("cut %d: OpenRing after cut: %v", cut, err)
			}
			fr := r.Frames()
			newest, _ := r.Newest()
			if len(fr) == 0 && acked > 0 || len(fr) > 0 && newest.Seq != acked && newest.Seq != acked+1 {
				t.Fatalf("cut %d seed %d: newest %d, acked %d", cut, seed, newest.Seq, acked)
			}
			for i := 1; i < len(fr); i++ {
				if fr[i].Seq != fr[i-1].Seq+1 {
					t.Fatalf("cut %d seed %d: frames %d then %d", cut, seed, fr[i-1].Seq, fr[i].Seq)
				}
			}
			if err := r.Append([]byte("after")); err != nil {
				t.Fatalf("cut %d: Append after cut: %v", cut, err)
			}
		}
	}
}

// TestScanRejectsUnpaddedFrame: a frame whose length is not a multiple of
// the write unit (only a forger writes one) is not taken, so appends stay
// aligned.
func TestScanRejectsUnpaddedFrame(t *testing.T) {
	buf := bytes.Repeat([]byte{0xFF}, 256)
	copy(buf, Encode(testMagic, 1, 1, []byte("abc"), 1)) // 35 bytes
	s, err := ScanBytes(buf, 16, testMagic, 1, 64)
	if err != nil || len(s.Frames) != 0 || s.DirtyEnd%16 != 0 {
		t.Errorf("ScanBytes = %+v, %v; want no frame and an aligned dirty end", s, err)
	}
}

func TestWindowBounds(t *testing.T) {
	m := NewMem(4*1024, 1024, 16)
	if _, err := NewWindow(m, 512, 1024); !errors.Is(err, ErrGeometry) {
		t.Errorf("NewWindow(misaligned) = %v", err)
	}
	w, _ := NewWindow(m, 1024, 2048)
	if _, err := w.WriteAt(make([]byte, 16), 2048); err == nil {
		t.Error("WriteAt past the window's end succeeded")
	}
	if err := w.Erase(0, 1024); err != nil || m.B[0] != 0xFF {
		t.Fatal(err)
	}
	w.WriteAt(bytes.Repeat([]byte{0}, 16), 0)
	if m.B[1024] != 0 || m.B[0] != 0xFF {
		t.Error("window offset not applied")
	}
}

// FuzzScan: any region content scans without panic, frames found lie
// within the region and do not overlap.
func FuzzScan(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.bin"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(Encode(testMagic, 1, 1, []byte("x"), 16))
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := bytes.Repeat([]byte{0xFF}, 4096)
		copy(buf, data)
		s, err := ScanBytes(buf, 16, testMagic, 1, 512)
		if err != nil {
			return
		}
		end := int64(0)
		for _, fr := range s.Frames {
			if fr.Off < end || fr.Off+fr.Len > int64(len(buf)) {
				t.Fatalf("frame at %d+%d overlaps or overruns (end %d)", fr.Off, fr.Len, end)
			}
			end = fr.Off + fr.Len
		}
		if s.DirtyEnd > int64(len(buf)) {
			t.Fatalf("DirtyEnd %d past the region", s.DirtyEnd)
		}
	})
}

var update = flag.Bool("update", false, "rewrite testdata seeds")

// TestSeeds writes (with -update) or checks testdata/ring.bin: a ring with
// frames in two areas and a torn frame, the seed of FuzzScan.
func TestSeeds(t *testing.T) {
	m := NewMem(3*1024, 1024, 16)
	r, _ := OpenRing(m, RingConfig{Magic: testMagic, Version: 1, MaxPayload: 100})
	for i := range 30 {
		r.Append([]byte(fmt.Sprint("frame ", i)))
	}
	_, end := r.cur, r.end
	copy(m.B[int64(r.cur)*r.areaSize+end:], Encode(testMagic, 1, 99, []byte("torn"), 16)[:20])
	p := filepath.Join("testdata", "ring.bin")
	if *update {
		if err := os.WriteFile(p, m.B, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, m.B) {
		t.Errorf("%s differs from what this build writes (%v): regenerate with -update", p, err)
	}
}
