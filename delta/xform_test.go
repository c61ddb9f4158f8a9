package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// thumbImage is Thumb-2-like code: random halfwords with BL pairs.
func thumbImage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := append(armELFHeader(), make([]byte, 0, n)...)
	for len(b) < n {
		if r.IntN(3) == 0 {
			off := uint32(r.IntN(1 << 16))
			b = binary.LittleEndian.AppendUint16(b, uint16(0xF000|off>>11&0x7FF))
			b = binary.LittleEndian.AppendUint16(b, uint16(0xF800|off&0x7FF))
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(r.Uint32()))
	}
	return b[:n]
}

// TestTransformsAreLocal: each transform is a bijection, and converting
// any range through xformView (with the bytes around it) gives the bytes
// of the whole image converted at once, so frames and reads of any size
// agree with the encoder.
func TestTransformsAreLocal(t *testing.T) {
	img := append(thumbImage(400, 20_000), image(401, 20_000)...)
	for _, x := range []xform{xformARM, xformThumb} {
		whole := slices.Clone(img)
		x.convert(whole, 0, true)
		if bytes.Equal(whole, img) {
			t.Fatalf("transform %d changed nothing", x)
		}
		back := slices.Clone(whole)
		x.convert(back, 0, false)
		if !bytes.Equal(back, img) {
			t.Fatalf("transform %d: decode(encode(img)) != img", x)
		}
		checkViewLocal(t, &xformView{v: &readerView{r: bytes.NewReader(img), size: int64(len(img))}, x: x, encode: true}, whole, 402)
	}
}

// TestThumbRoundTrip: Thumb-2 code diffs with the Thumb transform
// (chosen by the branch counts), applies alone and inside a chain whose
// inner hop is read at random.
func TestThumbRoundTrip(t *testing.T) {
	v0 := thumbImage(410, 200_000)
	v1 := mutate(v0, 411, 60)
	v2 := mutate(v1, 412, 60)
	var ps [][]byte
	for _, pr := range [][2][]byte{{v0, v1}, {v1, v2}} {
		p, err := DiffWith(pr[0], pr[1], DiffOptions{FrameSize: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if a32, thumb := blCounts(v1); thumb <= a32 {
		t.Fatalf("thumbImage has %d Thumb BLs and %d A32 BLs", thumb, a32)
	}
	got, err := Chain(v0, readers(ps))
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("Chain = %d bytes, %v; want v2", len(got), err)
	}
	none, _ := DiffWith(v0, v1, DiffOptions{FrameSize: 16 << 10, Transform: TransformNone})
	if len(ps[0]) > len(none) {
		t.Fatalf("auto %d bytes, more than without a transform (%d)", len(ps[0]), len(none))
	}
}

// TestCorruptVersion2 flips bits and bytes all over version-2 patches
// (frames with both transforms, raw and compressed sections), applied
// alone and as a chain's inner hop: every outcome is the right image or a
// typed error, never a panic or a write past the cap.
func TestCorruptVersion2(t *testing.T) {
	v0 := append(armImage(420, 40_000), thumbImage(421, 40_000)...)
	v1 := mutate(v0, 422, 40)
	v1[100] ^= 1
	m0, m1 := movedCode(424, 200_000) // ARM frames, LZMA2 diff sections
	corruptV2(t, v0, v1, 8<<10)
	corruptV2(t, m0, m1, 32<<10)
}

func corruptV2(t *testing.T, v0, v1 []byte, frame int64) {
	t.Helper()
	good, err := DiffWith(v0, v1, DiffOptions{FrameSize: frame, DigestBlock: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	same, _ := DiffWith(v1, v1, DiffOptions{FrameSize: frame})
	r := rand.New(rand.NewPCG(423, uint64(frame)))
	for i := range 300 {
		p := slices.Clone(good)
		for range 1 + r.IntN(3) {
			at := nodeHeaderSize + r.IntN(len(p)-nodeHeaderSize)
			if r.IntN(2) == 0 {
				p[at] ^= 1 << r.IntN(8)
			} else {
				p[at] = byte(r.Uint32())
			}
		}
		for _, chain := range [][][]byte{{p}, {p, same}} {
			w := &flash{bs: 4096}
			_, err := Apply(context.Background(), bytes.NewReader(v0), int64(len(v0)), readers(chain), w, Options{BlockSize: 4096, MaxSize: 1 << 20})
			if len(w.data) > 1<<20 {
				t.Fatalf("mutation %d: wrote past the cap", i)
			}
			var ce *CorruptError
			if err != nil && !errors.As(err, &ce) && !errors.Is(err, ErrTargetMismatch) {
				t.Fatalf("mutation %d: error %v is not typed", i, err)
			}
			if err == nil && !bytes.Equal(w.data, v1) {
				t.Fatalf("mutation %d: no error but the output is not v1", i)
			}
		}
	}
}

// movedCode returns an A32 image (calls to 16 functions at its start,
// then a table of absolute pointers to them) and its next version, where
// 4 KiB of new code was inserted after the functions: every later call
// changes its relative offset (the ARM transform undoes that), and every
// pointer changes by 4096 (which neither transform undoes, so the diff
// bytes are not all zero but compress).
func movedCode(seed uint64, n int) (old, nw []byte) {
	const ins, at = 4096, 8 << 10
	build := func(shift int) []byte {
		b := armELFHeader()
		for len(b) < at {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(b))*2654435761)
		}
		if shift > 0 {
			b = append(b, image(seed, shift)...)
		}
		rr := rand.New(rand.NewPCG(seed, 5))
		for len(b) < n+shift {
			pc := len(b)
			if rr.IntN(3) == 0 {
				target := 64 + 512*rr.IntN(16)
				b = binary.LittleEndian.AppendUint32(b, 0xEB000000|uint32((target-pc-8)/4)&0xFFFFFF)
			} else {
				b = binary.LittleEndian.AppendUint32(b, rr.Uint32())
			}
		}
		for i := range n / 10 {
			b = binary.LittleEndian.AppendUint32(b, uint32(0x10000+at+shift+64*(i%300)))
		}
		return b
	}
	return build(0), build(ins)
}

// checkViewLocal reads random ranges of v and compares them with whole,
// the image converted at once.
func checkViewLocal(t *testing.T, v view, whole []byte, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0))
	for range 2000 {
		lo := r.IntN(len(whole))
		hi := lo + r.IntN(min(len(whole)-lo, 9000)+1)
		got := make([]byte, hi-lo)
		if _, err := v.ReadAt(got, int64(lo)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, whole[lo:hi]) {
			t.Fatalf("view [%d,%d) differs from the whole image converted", lo, hi)
		}
	}
}
