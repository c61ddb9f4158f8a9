package delta

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"meterupd/internal/realtool"
)

// armImage is an executable-like image behind a 32-bit ARM ELF header.
func armImage(seed uint64, n int) []byte {
	return append(armELFHeader(), image(seed, n)...)
}

// realBsdiffSize returns the size of Debian bsdiff's patch for old→new.
func realBsdiffSize(t *testing.T, old, nw []byte) int {
	t.Helper()
	bsdiff := realtool.Need(t, "bsdiff", "bsdiff")
	dir := t.TempDir()
	o, n, p := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
	if err := os.WriteFile(o, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n, nw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bsdiff, o, n, p).CombinedOutput(); err != nil {
		t.Fatalf("bsdiff: %v: %s", err, out)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}

// TestVersionOnlyRelease: two bytes change in a 4 MiB image; the node
// format costs at most Debian bsdiff's size plus 1 KiB (its fixed cost is
// a 100-byte header and, per 1 MiB frame, 8 bytes of lengths, one 16-byte
// digest and the two sections, stored raw when that is smaller).
func TestVersionOnlyRelease(t *testing.T) {
	old := armImage(200, 4<<20)
	nw := append([]byte(nil), old...)
	nw[1000] ^= 0x11
	nw[3<<20] ^= 0x22
	p, err := Diff(old, nw, FormatNode)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Patch(old, bytes.NewReader(p))
	if err != nil || !bytes.Equal(got, nw) {
		t.Fatalf("Patch = %d bytes, %v; want new", len(got), err)
	}
	if b := realBsdiffSize(t, old, nw); len(p) > b+1024 {
		t.Fatalf("node patch %d bytes, bsdiff %d: more than bsdiff + 1 KiB", len(p), b)
	}
}

// TestTransformChosenPerFrame: whether code shifted by 64 KiB (caller and
// callee move together, so the relative branches are unchanged) or edited,
// the automatic choice costs no more than either coding alone: each frame
// keeps the cheaper one.
func TestTransformChosenPerFrame(t *testing.T) {
	old := armImage(210, 1<<20)
	shifted := append(append(armELFHeader(), image(211, 64<<10)...), old[52:]...)
	size := func(nw []byte, tr Transform) int {
		t.Helper()
		p, err := DiffWith(old, nw, DiffOptions{Transform: tr, FrameSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Patch(old, bytes.NewReader(p))
		if err != nil || !bytes.Equal(got, nw) {
			t.Fatalf("transform %d: Patch = %d bytes, %v; want new", tr, len(got), err)
		}
		return len(p)
	}
	for _, tc := range []struct {
		name string
		nw   []byte
	}{
		{"shifted", shifted},
		{"edited", mutate(old, 212, 300)},
	} {
		auto, none, arm := size(tc.nw, TransformAuto), size(tc.nw, TransformNone), size(tc.nw, TransformARM)
		t.Logf("%s: auto %d, none %d, arm %d", tc.name, auto, none, arm)
		if auto > none || auto > arm {
			t.Errorf("%s: auto %d bytes, more than none (%d) or arm (%d)", tc.name, auto, none, arm)
		}
	}
}

// TestChainDecodesEachFrameOnce: the inner hops of a chain keep their
// decoded frames compact, so a later hop that reads its source out of
// order does not decode the same frame again.
func TestChainDecodesEachFrameOnce(t *testing.T) {
	v := armImage(220, 1<<20)
	vs := [][]byte{v}
	var ps [][]byte
	for i := range 3 {
		// Move a block of code to the front, and edit: reads jump back.
		n := mutate(append(append([]byte(nil), v[300_000:400_000]...), v...), uint64(221+i), 50)
		p, err := DiffWith(v, n, DiffOptions{FrameSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		vs, ps, v = append(vs, n), append(ps, p), n
	}
	prod, _, srcCheck, err := openChain(bytes.NewReader(vs[0]), int64(len(vs[0])), readers(ps), Options{MaxSize: 1 << 30, MaxPatchBuffer: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		p, _, _, err := prod.next()
		if err != nil {
			break
		}
		got = append(got, p...)
	}
	if err := <-srcCheck; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, vs[3]) {
		t.Fatalf("chain output differs from v3")
	}
	inner := prod.(*nodeStream).dec.src.(*nodeView)
	for hop := 1; hop >= 0; hop-- {
		if frames := inner.h.frames(); inner.decodes != frames {
			t.Errorf("hop %d: %d frame decodes for %d frames", hop, inner.decodes, frames)
		}
		if hop > 0 {
			inner = inner.dec.src.(*nodeView)
		}
	}
}

func TestFormatForNode(t *testing.T) {
	for _, tc := range []struct {
		versions []int
		want     Format
		err      bool
	}{
		{nil, FormatNode1, false},
		{[]int{1}, FormatNode1, false},
		{[]int{1, 2}, FormatNode2, false},
		{[]int{2, 9}, FormatNode2, false},
		{[]int{1, 2, 3}, FormatNode, false},
		{[]int{3}, FormatNode, false},
		{[]int{9}, 0, true},
	} {
		got, err := FormatForNode(tc.versions)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("FormatForNode(%v) = %v, %v; want %v (error %v)", tc.versions, got, err, tc.want, tc.err)
		}
	}
	if !errors.Is(func() error { _, err := FormatForNode([]int{9}); return err }(), ErrUnknownFormat) {
		t.Errorf("FormatForNode(unknown) does not wrap ErrUnknownFormat")
	}
}

// TestVersion1StillApplies: a version-1 patch (what a head-end sends a
// node that does not advertise version 2) applies, in a chain with
// version-2 hops too.
func TestVersion1StillApplies(t *testing.T) {
	v0 := armImage(230, 100_000)
	v1 := mutate(v0, 231, 40)
	v2 := mutate(v1, 232, 40)
	p1, err := DiffWith(v0, v1, DiffOptions{Format: FormatNode1, FrameSize: 16 << 10, DigestBlock: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if p1[8] != nodeVersion1 {
		t.Fatalf("FormatNode1 wrote version %d", p1[8])
	}
	p2, err := DiffWith(v1, v2, DiffOptions{FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := &flash{bs: 4096}
	if _, err := Apply(context.Background(), bytes.NewReader(v0), int64(len(v0)), readers([][]byte{p1, p2}), w, Options{BlockSize: 4096}); err != nil || !bytes.Equal(w.data, v2) {
		t.Fatalf("Apply(v1 hop, v2 hop) = %v, output equal %v", err, bytes.Equal(w.data, v2))
	}
}
