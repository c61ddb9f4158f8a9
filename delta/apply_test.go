package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// flash is a destination that records its blocks and can lose power.
type flash struct {
	bs      int64
	data    []byte
	writes  int  // blocks written in all runs
	cutAt   int  // lose power while writing this write number (0: never)
	torn    bool // a cut leaves half a block of garbage
	written []int64
}

var errPowerCut = errors.New("power cut")

func (f *flash) WriteBlock(i int64, p []byte) error {
	f.writes++
	off := i * f.bs
	if need := off + int64(len(p)); int64(len(f.data)) < need {
		f.data = append(f.data, make([]byte, need-int64(len(f.data)))...)
	}
	if f.cutAt != 0 && f.writes == f.cutAt {
		for j := range p[:len(p)/2] {
			f.data[off+int64(j)] = 0x5A
		}
		return errPowerCut
	}
	copy(f.data[off:], p)
	f.written = append(f.written, i)
	return nil
}

func readers(ps [][]byte) []io.Reader {
	var rs []io.Reader
	for _, p := range ps {
		rs = append(rs, bytes.NewReader(p))
	}
	return rs
}

// onlyReader hides io.ReaderAt, so Apply must buffer inner hops.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// chainFixture makes v0..v3 and the node patches between them, with small
// frames so that a small image has many.
func chainFixture(t *testing.T, arm []Transform) (vs [][]byte, ps [][]byte) {
	t.Helper()
	v := image(20, 120_000)
	vs = append(vs, v)
	for i, tr := range arm {
		n := mutate(v, uint64(30+i), 200)
		p, err := DiffWith(v, n, DiffOptions{Transform: tr, FrameSize: 16 << 10, DigestBlock: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		vs, ps, v = append(vs, n), append(ps, p), n
	}
	return vs, ps
}

func TestChain(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   []Transform
	}{
		{"plain", []Transform{TransformNone, TransformNone, TransformNone}},
		{"arm", []Transform{TransformARM, TransformARM, TransformARM}},
		{"mixed", []Transform{TransformARM, TransformNone, TransformARM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, ps := chainFixture(t, tc.tr)
			got, err := Chain(vs[0], readers(ps))
			if err != nil {
				t.Fatalf("Chain: %v", err)
			}
			if !bytes.Equal(got, vs[3]) {
				t.Fatalf("Chain = %d bytes, want v3 (%d bytes)", len(got), len(vs[3]))
			}
			// Without io.ReaderAt, inner hops are buffered.
			var rs []io.Reader
			for _, p := range ps {
				rs = append(rs, onlyReader{bytes.NewReader(p)})
			}
			got, err = Chain(vs[0], rs)
			if err != nil || !bytes.Equal(got, vs[3]) {
				t.Fatalf("Chain(readers only) = %d bytes, %v; want v3", len(got), err)
			}
		})
	}
}

func TestChainWithBsdiffLastHop(t *testing.T) {
	vs, ps := chainFixture(t, []Transform{TransformARM, TransformNone})
	last, err := Diff(vs[2], mutate(vs[2], 99, 50), FormatBSDIFF43)
	if err != nil {
		t.Fatal(err)
	}
	want := mutate(vs[2], 99, 50)
	got, err := Chain(vs[0], readers([][]byte{ps[0], ps[1], last}))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Chain(node, node, bsdiff43) = %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	b40, _ := Diff(vs[0], vs[1], FormatBSDIFF40)
	if _, err := Chain(vs[0], readers([][]byte{b40, ps[1]})); !errors.Is(err, ErrChainUnsupported) {
		t.Fatalf("Chain(bsdiff40 inner hop) error = %v, want ErrChainUnsupported", err)
	}
}

func TestChainChecksLinks(t *testing.T) {
	vs, ps := chainFixture(t, []Transform{TransformNone, TransformNone, TransformNone})
	w := &flash{bs: 4096}
	_, err := Apply(context.Background(), bytes.NewReader(vs[0]), int64(len(vs[0])), readers([][]byte{ps[0], ps[2]}), w, Options{BlockSize: 4096})
	if !errors.Is(err, ErrSourceMismatch) || w.writes != 0 {
		t.Fatalf("Apply(hop skipped) = %v after %d writes, want ErrSourceMismatch before any write", err, w.writes)
	}
	_, err = Apply(context.Background(), bytes.NewReader(vs[1]), int64(len(vs[1])), readers(ps), w, Options{BlockSize: 4096})
	if !errors.Is(err, ErrSourceMismatch) || w.writes != 0 {
		t.Fatalf("Apply(wrong source) = %v after %d writes, want ErrSourceMismatch before any write", err, w.writes)
	}
}

func TestMaxSize(t *testing.T) {
	old := image(40, 10_000)
	nw := mutate(old, 41, 10)
	for _, f := range []Format{FormatNode, FormatBSDIFF40, FormatBSDIFF43} {
		p, _ := Diff(old, nw, f)
		w := &flash{bs: 4096}
		_, err := Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{p}), w, Options{BlockSize: 4096, MaxSize: int64(len(nw) - 1)})
		if !errors.Is(err, ErrTooLarge) || w.writes != 0 {
			t.Errorf("%v: Apply(cap below new size) = %v after %d writes, want ErrTooLarge before any write", f, err, w.writes)
		}
	}
}

func TestTamperedBlockIsNotWritten(t *testing.T) {
	old := image(50, 100_000)
	nw := mutate(old, 51, 100)
	p, err := DiffWith(old, nw, DiffOptions{FrameSize: 16 << 10, DigestBlock: 4 << 10, Transform: TransformNone})
	if err != nil {
		t.Fatal(err)
	}
	// Flip a stored digest of frame 2, block 1 (output block 9).
	off := int64(nodeHeaderSize)
	for f := 0; f < 2; f++ {
		loc, _ := readFrameHeader(bytes.NewReader(p[off:]), &nodeHeader{version: nodeVersion2, frameSize: 16 << 10, digestLog: 12, newSize: int64(len(nw))}, int64(f), nil, off, 0)
		off = loc.data + loc.zd + loc.zr
	}
	p[off+8+digestLen] ^= 1
	w := &flash{bs: 4096}
	_, err = Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{p}), w, Options{BlockSize: 4096})
	var bm *BlockMismatchError
	if !errors.As(err, &bm) || bm.Block != 9 || !errors.Is(err, ErrTargetMismatch) {
		t.Fatalf("Apply(tampered digest) = %v, want *BlockMismatchError for block 9", err)
	}
	if len(w.written) != 9 {
		t.Fatalf("Apply(tampered digest) wrote %d blocks, want the 9 before the bad one", len(w.written))
	}
}

// TestResumeAfterCut cuts power while writing each block in turn, resumes
// from the last checkpoint with the patches re-opened, and checks the
// result and that at most one block is written again.
func TestResumeAfterCut(t *testing.T) {
	vs, ps := chainFixture(t, []Transform{TransformARM, TransformNone, TransformARM})
	b43, _ := Diff(vs[2], vs[3], FormatBSDIFF43)
	b40, _ := Diff(vs[0], vs[1], FormatBSDIFF40)
	// One digest per frame, as Diff makes by default.
	var perFrame [][]byte
	for i := range 3 {
		p, err := DiffWith(vs[i], vs[i+1], DiffOptions{FrameSize: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		perFrame = append(perFrame, p)
	}
	// Version 3: reference correction, two hops.
	sv := synthImages(550, 3, 200)
	var refs [][]byte
	for i := range 2 {
		p, err := DiffWith(sv[i], sv[i+1], DiffOptions{FrameSize: 16 << 10})
		if err != nil || p[8] != nodeVersion3 {
			t.Fatalf("version-3 fixture: %v", err)
		}
		refs = append(refs, p)
	}
	for _, tc := range []struct {
		name    string
		src     []byte
		patches [][]byte
		want    []byte
		bs      int64
	}{
		{"node-chain-4k", vs[0], ps, vs[3], 4096},
		{"node-chain-12k", vs[0], ps, vs[3], 12 << 10},
		{"node-chain-1k", vs[0], ps, vs[3], 1024},
		{"node-chain-frame-digest", vs[0], perFrame, vs[3], 4096},
		{"node-bsdiff43", vs[0], [][]byte{ps[0], ps[1], b43}, vs[3], 8192},
		{"bsdiff40", vs[0], [][]byte{b40}, vs[1], 8192},
		{"node-v3-refs", sv[0], refs, sv[2], 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks := int((int64(len(tc.want)) + tc.bs - 1) / tc.bs)
			// Every block up to 40 blocks, then a spread of cut points.
			for cut := 1; cut <= blocks; cut += max(1, blocks/40) {
				w := &flash{bs: tc.bs, cutAt: cut}
				var last []byte
				opt := Options{BlockSize: tc.bs, Checkpoint: func(cp []byte) error {
					if len(cp) > 256 {
						t.Fatalf("checkpoint is %d bytes", len(cp))
					}
					last = cp
					return nil
				}}
				_, err := Apply(context.Background(), bytes.NewReader(tc.src), int64(len(tc.src)), readers(tc.patches), w, opt)
				if !errors.Is(err, errPowerCut) {
					t.Fatalf("cut %d: Apply = %v, want the power cut", cut, err)
				}
				before := len(w.written)
				w.cutAt = 0
				opt.Resume = last
				res, err := Apply(context.Background(), bytes.NewReader(tc.src), int64(len(tc.src)), readers(tc.patches), w, opt)
				if err != nil {
					t.Fatalf("cut %d: resume: %v", cut, err)
				}
				if !bytes.Equal(w.data, tc.want) {
					t.Fatalf("cut %d: resumed image differs from the target", cut)
				}
				if extra := before + int(res.Blocks) - blocks; extra != 0 {
					t.Fatalf("cut %d: %d verified blocks written again", cut, extra)
				}
				if w.writes > blocks+1 {
					t.Fatalf("cut %d: %d block writes for %d blocks, want at most one extra", cut, w.writes, blocks)
				}
			}
		})
	}
}

func TestResumeRejectsForeignCheckpoint(t *testing.T) {
	vs, ps := chainFixture(t, []Transform{TransformNone, TransformNone})
	var cps [][]byte
	w := &flash{bs: 4096}
	if _, err := Apply(context.Background(), bytes.NewReader(vs[0]), int64(len(vs[0])), readers(ps[:1]), w, Options{BlockSize: 4096, Checkpoint: func(cp []byte) error { cps = append(cps, cp); return nil }}); err != nil {
		t.Fatal(err)
	}
	cp := cps[3]
	for name, opt := range map[string]Options{
		"other-chain":      {BlockSize: 4096, Resume: cp},
		"other-block-size": {BlockSize: 8192, Resume: cp},
		"garbled":          {BlockSize: 4096, Resume: append([]byte{}, cp[:len(cp)-1]...)},
	} {
		patches := ps
		if name != "other-chain" {
			patches = ps[:1]
		}
		_, err := Apply(context.Background(), bytes.NewReader(vs[0]), int64(len(vs[0])), readers(patches), &flash{bs: opt.BlockSize}, opt)
		if !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: Apply = %v, want ErrCheckpoint", name, err)
		}
	}
}

func TestCorruptBsdiffControl(t *testing.T) {
	old := image(60, 5000)
	nw := mutate(old, 61, 5)
	p, _ := Diff(old, nw, FormatBSDIFF43)
	// Rebuild the stream with a negative add length (CVE-2014-9862).
	var ctrl [24]byte
	offtout(ctrl[:], -5)
	z, _ := bzip2Compress(ctrl[:])
	bad := append(append([]byte(nil), p[:24]...), z...)
	_, err := Patch(old, bytes.NewReader(bad))
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Patch(negative add) = %v, want *CorruptError", err)
	}
	// A huge declared size is refused, not allocated.
	huge := append([]byte(nil), p...)
	offtout(huge[16:], 1<<62)
	if _, err := Patch(old, bytes.NewReader(huge)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Patch(new size 2^62) = %v, want ErrTooLarge", err)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	c := Checkpoint{ID: [16]byte{1, 2}, BlockSize: 65536, Next: 7, Restart: 1 << 20, Digest: [32]byte{9}, HashState: bytes.Repeat([]byte{3}, 108)}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Checkpoint
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if d.ID != c.ID || d.Next != c.Next || d.Restart != c.Restart || !bytes.Equal(d.HashState, c.HashState) || d.Digest != c.Digest {
		t.Fatalf("UnmarshalBinary(MarshalBinary(c)) = %+v, want %+v", d, c)
	}
}

// TestTamperedFrameIsNotWritten: with one digest per frame (the default),
// a bad frame is caught before any of its blocks is written.
func TestTamperedFrameIsNotWritten(t *testing.T) {
	old := image(52, 100_000)
	nw := mutate(old, 53, 100)
	p, err := DiffWith(old, nw, DiffOptions{FrameSize: 16 << 10, Transform: TransformNone})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := parseNodeHeader(p[:nodeHeaderSize], 1<<30)
	off := int64(nodeHeaderSize)
	for f := range int64(2) {
		loc, _ := readFrameHeader(bytes.NewReader(p[off:]), h, f, nil, off, 0)
		off = loc.data + loc.zd + loc.zr
	}
	p[off+8] ^= 1 // frame 2's digest
	w := &flash{bs: 4096}
	_, err = Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{p}), w, Options{BlockSize: 4096})
	var bm *BlockMismatchError
	if !errors.As(err, &bm) || bm.Offset != 2*16<<10 {
		t.Fatalf("Apply(tampered frame digest) = %v, want *BlockMismatchError at frame 2", err)
	}
	if len(w.written) != 8 {
		t.Fatalf("Apply(tampered frame digest) wrote %d blocks, want the 8 of frames 0 and 1", len(w.written))
	}
}
