package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// synthProgram is a toy A32 program: functions of random instruction
// words that call each other with BL and branch inside themselves with B,
// literal pools holding function addresses, and a data section of
// pointers to functions and to data (a vtable, a relocation table).
type synthProgram struct {
	funcs [][]synthWord
	data  []synthWord
}

// synthWord is a word before linking.
type synthWord struct {
	kind byte   // 0 plain word v, 1 BL to function v, 2 B v words on, 3 address of function v, 4 address of data word v
	v    uint32 // its value, function, distance or data word
}

func newSynthProgram(seed uint64, nfuncs int) *synthProgram {
	r := rand.New(rand.NewPCG(seed, 9))
	p := &synthProgram{}
	for range nfuncs {
		p.funcs = append(p.funcs, synthFunc(r, nfuncs))
	}
	for range nfuncs * 2 {
		if r.IntN(2) == 0 {
			p.data = append(p.data, synthWord{3, uint32(r.IntN(nfuncs))})
		} else {
			p.data = append(p.data, synthWord{4, uint32(r.IntN(nfuncs * 2))})
		}
	}
	return p
}

func synthFunc(r *rand.Rand, nfuncs int) []synthWord {
	n := 8 + r.IntN(120)
	f := make([]synthWord, n)
	for i := range f {
		switch r.IntN(10) {
		case 0, 1:
			f[i] = synthWord{1, uint32(r.IntN(nfuncs))}
		case 2:
			f[i] = synthWord{2, uint32(r.IntN(n - i))}
		case 3:
			f[i] = synthWord{3, uint32(r.IntN(nfuncs))}
		default:
			f[i] = synthWord{0, 0xE0000000 | r.Uint32()&0x01FFFFFF} // not a branch
		}
	}
	return f
}

// evolve returns the next release: new functions inserted (so the code
// after them moves), a few functions changed, data appended.
func (p *synthProgram) evolve(seed uint64) *synthProgram {
	r := rand.New(rand.NewPCG(seed, 10))
	every := len(p.funcs)/3 + 1
	n := len(p.funcs) + (len(p.funcs)+every-2)/every
	// Where each old function goes.
	idx := make([]uint32, len(p.funcs))
	k := uint32(0)
	for i := range p.funcs {
		if i%every == 1 {
			k++
		}
		idx[i] = k
		k++
	}
	remap := func(ws []synthWord) []synthWord {
		ws = slices.Clone(ws)
		for j, w := range ws {
			if w.kind == 1 || w.kind == 3 {
				ws[j].v = idx[w.v]
			}
		}
		return ws
	}
	q := &synthProgram{data: remap(p.data)}
	for i, f := range p.funcs {
		if i%every == 1 {
			q.funcs = append(q.funcs, synthFunc(r, n))
		}
		f = remap(f)
		if r.IntN(20) == 0 {
			f[r.IntN(len(f))] = synthWord{0, 0xE1A00000 | r.Uint32()&0xFFF}
		}
		q.funcs = append(q.funcs, f)
	}
	for range 10 {
		q.data = append(q.data, synthWord{4, uint32(r.IntN(len(q.data)))})
	}
	return q
}

// elf links the program into a 32-bit ARM ELF file: .text at 0x11000,
// .data after it, section headers at the end.
func (p *synthProgram) elf() []byte { return p.link(false) }

// link links the program as A32 code, or as Thumb-2 (calls as BL pairs,
// functions of odd length starting with a 16-bit NOP so that half the pairs
// are not word-aligned, function addresses with bit 0 set).
func (p *synthProgram) link(thumb bool) []byte {
	const textOff, textAddr = 0x1000, 0x11000
	var addr []uint32
	a := uint32(textAddr)
	for _, f := range p.funcs {
		addr = append(addr, a)
		a += uint32(4 * len(f))
		if thumb {
			a += uint32(2 * (len(f) & 1))
		}
	}
	a = (a + 3) &^ 3
	dataOff := textOff + int(a-textAddr)
	dataAddr := a + 0x10000
	img := make([]byte, textOff, dataOff+4*len(p.data)+0x200)
	copy(img, armELFHeader())
	link := func(w synthWord, pc uint32) uint32 {
		switch w.kind {
		case 1:
			return 0xEB000000 | ((addr[w.v]-pc-8)>>2)&0xFFFFFF
		case 2:
			return 0xEA000000 | ((4*w.v-8)>>2)&0xFFFFFF
		case 3:
			return addr[w.v]
		case 4:
			return dataAddr + 4*w.v
		}
		return w.v
	}
	if thumb {
		link = func(w synthWord, pc uint32) uint32 {
			switch w.kind {
			case 1:
				imm := addr[w.v] - pc - 4
				s := imm >> 24 & 1
				j1, j2 := ^(imm>>23&1)&1^s, ^(imm>>22&1)&1^s
				return (0xD000|j1<<13|j2<<11|imm>>1&0x7FF)<<16 | 0xF000 | s<<10 | imm>>12&0x3FF
			case 3:
				return addr[w.v] | 1
			case 4:
				return dataAddr + 4*w.v
			}
			return 0x20002000 | w.v&0x07FF07FF // two MOVS
		}
	}
	for fi, f := range p.funcs {
		at := addr[fi]
		if thumb && len(f)&1 == 1 {
			img = binary.LittleEndian.AppendUint16(img, 0xBF00)
			at += 2
		}
		for i, w := range f {
			img = binary.LittleEndian.AppendUint32(img, link(w, at+uint32(4*i)))
		}
	}
	for len(img) < dataOff {
		img = append(img, 0)
	}
	for _, d := range p.data {
		img = binary.LittleEndian.AppendUint32(img, link(d, 0))
	}
	strtab := []byte("\x00.text\x00.data\x00.shstrtab\x00")
	strOff := len(img)
	img = append(img, strtab...)
	for len(img)%4 != 0 {
		img = append(img, 0)
	}
	shoff := len(img)
	sec := func(name, typ, flags, addr, off, size uint32) {
		for _, v := range []uint32{name, typ, flags, addr, off, size, 0, 0, 4, 0} {
			img = binary.LittleEndian.AppendUint32(img, v)
		}
	}
	sec(0, 0, 0, 0, 0, 0)
	sec(1, shtProgbits, shfAlloc|shfExec, textAddr, textOff, uint32(dataOff-textOff))
	sec(7, shtProgbits, shfAlloc|1, dataAddr, uint32(dataOff), uint32(4*len(p.data)))
	sec(13, 3, 0, 0, uint32(strOff), uint32(len(strtab)))
	binary.LittleEndian.PutUint32(img[32:], uint32(shoff))
	binary.LittleEndian.PutUint16(img[46:], 40)
	binary.LittleEndian.PutUint16(img[48:], 4)
	binary.LittleEndian.PutUint16(img[50:], 3)
	return img
}

// synthImages returns n releases of a file-system-like image: a text
// file, the program, and data after it; each release's program is
// evolved from the one before, and the header in front grows.
func synthImages(seed uint64, n, nfuncs int) [][]byte {
	p := newSynthProgram(seed, nfuncs)
	var out [][]byte
	for i := range n {
		img := bytes.Repeat([]byte("release notes\n"), 40+20*i)
		img = append(img, make([]byte, 512-len(img)%512)...)
		img = append(img, p.elf()...)
		img = append(img, make([]byte, 512-len(img)%512)...)
		img = append(img, image(seed+1, 3000)...)
		out = append(out, img)
		p = p.evolve(seed + 100 + uint64(i))
	}
	return out
}

// TestRefsSynthetic: on programs whose code moves, reference correction
// is chosen (version 3), the patch is much smaller than without it, and
// it applies byte-exact, alone and in a chain.
func TestRefsSynthetic(t *testing.T) {
	vs := synthImages(500, 3, 300)
	var ps [][]byte
	for i := range 2 {
		p3, err := DiffWith(vs[i], vs[i+1], DiffOptions{FrameSize: 16 << 10, DigestBlock: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := DiffWith(vs[i], vs[i+1], DiffOptions{Format: FormatNode2, FrameSize: 16 << 10, DigestBlock: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if p3[8] != nodeVersion3 || p2[8] != nodeVersion2 {
			t.Fatalf("step %d: versions %d and %d, want 3 and 2", i, p3[8], p2[8])
		}
		t.Logf("step %d: %d bytes with reference correction, %d without", i, len(p3), len(p2))
		if len(p3)*4 > len(p2)*3 {
			t.Errorf("step %d: %d bytes with reference correction, %d without: want at most 3/4", i, len(p3), len(p2))
		}
		got, err := Patch(vs[i], bytes.NewReader(p3))
		if err != nil || !bytes.Equal(got, vs[i+1]) {
			t.Fatalf("step %d: Patch = %d bytes, %v; want the new image", i, len(got), err)
		}
		// In place: the same patch, and the images put back.
		o, n := slices.Clone(vs[i]), slices.Clone(vs[i+1])
		pi, err := DiffWith(o, n, DiffOptions{FrameSize: 16 << 10, DigestBlock: 4 << 10, InPlace: true})
		if err != nil || !bytes.Equal(pi, p3) || !bytes.Equal(o, vs[i]) || !bytes.Equal(n, vs[i+1]) {
			t.Fatalf("step %d: in place: %v, same patch %v, images put back %v %v", i, err, bytes.Equal(pi, p3), bytes.Equal(o, vs[i]), bytes.Equal(n, vs[i+1]))
		}
		ps = append(ps, p3)
	}
	for _, rs := range [][]func([]byte) any{
		{func(b []byte) any { return bytes.NewReader(b) }, func(b []byte) any { return bytes.NewReader(b) }},
		{func(b []byte) any { return onlyReader{bytes.NewReader(b)} }, func(b []byte) any { return onlyReader{bytes.NewReader(b)} }},
	} {
		w := &flash{bs: 4096}
		patches := readers(nil)
		for i, p := range ps {
			patches = append(patches, rs[i](p).(interface{ Read([]byte) (int, error) }))
		}
		if _, err := Apply(context.Background(), bytes.NewReader(vs[0]), int64(len(vs[0])), patches, w, Options{BlockSize: 4096}); err != nil || !bytes.Equal(w.data, vs[2]) {
			t.Fatalf("chain of two version-3 hops = %v, output equal %v", err, bytes.Equal(w.data, vs[2]))
		}
	}
}

// TestRefsThumb: the same on Thumb-2 code, with branch pairs at both
// halfword alignments and across the encoder's 64 KiB pieces: version 3,
// smaller than version 2 with its Thumb-2 transform, byte-exact, the
// same in place, and any range of the source projects as the whole.
func TestRefsThumb(t *testing.T) {
	p := newSynthProgram(560, 600)
	vs := [][]byte{p.link(true), p.evolve(561).link(true)}
	for i := range vs {
		vs[i] = append(bytes.Repeat([]byte{7}, 512*(i+1)), vs[i]...)
	}
	p3, err := DiffWith(vs[0], vs[1], DiffOptions{FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := DiffWith(vs[0], vs[1], DiffOptions{Format: FormatNode2, FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes with reference correction, %d with the Thumb-2 transform", len(p3), len(p2))
	if p3[8] != nodeVersion3 || len(p3)*2 > len(p2) {
		t.Errorf("version %d, %d bytes; want version 3 and at most half of %d", p3[8], len(p3), len(p2))
	}
	got, err := Patch(vs[0], bytes.NewReader(p3))
	if err != nil || !bytes.Equal(got, vs[1]) {
		t.Fatalf("Patch = %d bytes, %v; want the new image", len(got), err)
	}
	o, n := slices.Clone(vs[0]), slices.Clone(vs[1])
	pi, err := DiffWith(o, n, DiffOptions{FrameSize: 16 << 10, InPlace: true})
	if err != nil || !bytes.Equal(pi, p3) || !bytes.Equal(o, vs[0]) {
		t.Fatalf("in place: %v, same patch %v, old put back %v", err, bytes.Equal(pi, p3), bytes.Equal(o, vs[0]))
	}
	tb := buildRefTable(vs[0], vs[1], scriptSegments(vs[0], vs[1]))
	if !slices.ContainsFunc(tb.regions, func(r refRegion) bool { return r.kind == refThumb }) {
		t.Fatal("no Thumb-2 region")
	}
	whole := slices.Clone(vs[0])
	tb.project(whole, 0)
	checkViewLocal(t, &xformView{v: &readerView{r: bytes.NewReader(vs[0]), size: int64(len(vs[0]))}, x: xformRef, refs: tb}, whole, 562)
}

// TestRefsGoBinary: two releases of a real program for GOARCH=arm and
// for GOARCH=arm64, built by the Go toolchain, the second with more code
// (so its functions and data move), inside images with different headers
// in front: reference correction is chosen, smaller, and byte-exact.
func TestRefsGoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four programs")
	}
	build := func(t *testing.T, goarch, src string) []byte {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "prog")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM=7", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v: %s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "prog"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, goarch := range []string{"arm", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			v1 := build(t, goarch, "package main\n\nimport (\"fmt\"; \"os\")\n\nfunc main() { fmt.Println(\"meter\", len(os.Args)) }\n")
			v2 := build(t, goarch, "package main\n\nimport (\"encoding/json\"; \"fmt\"; \"os\")\n\nfunc main() { b, _ := json.Marshal(os.Args); fmt.Println(\"meter\", string(b), len(os.Args)) }\n")
			old := append(make([]byte, 1024), v1...)
			nw := append(make([]byte, 4096), v2...)
			p3, err := DiffWith(old, nw, DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := DiffWith(old, nw, DiffOptions{Format: FormatNode2})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes with reference correction (version %d), %d without", len(p3), p3[8], len(p2))
			if p3[8] != nodeVersion3 || len(p3) >= len(p2) {
				t.Errorf("version %d, %d bytes; want version 3 and fewer than %d", p3[8], len(p3), len(p2))
			}
			got, err := Patch(old, bytes.NewReader(p3))
			if err != nil || !bytes.Equal(got, nw) {
				t.Fatalf("Patch = %d bytes, %v; want the new image", len(got), err)
			}
			// Any range of the source projects as the whole does.
			tb := buildRefTable(old, nw, scriptSegments(old, nw))
			whole := slices.Clone(old)
			tb.project(whole, 0)
			checkViewLocal(t, &xformView{v: &readerView{r: bytes.NewReader(old), size: int64(len(old))}, x: xformRef, refs: tb}, whole, 512)
		})
	}
}

// TestRefViewIsLocal: projecting any range of the source through xformView
// gives the bytes of the whole image projected at once.
func TestRefViewIsLocal(t *testing.T) {
	vs := synthImages(510, 2, 200)
	tb := buildRefTable(vs[0], vs[1], scriptSegments(vs[0], vs[1]))
	if tb == nil {
		t.Fatal("no reference table for two ELF images")
	}
	whole := slices.Clone(vs[0])
	tb.project(whole, 0)
	if bytes.Equal(whole, vs[0]) {
		t.Fatal("projection changed nothing")
	}
	checkViewLocal(t, &xformView{v: &readerView{r: bytes.NewReader(vs[0]), size: int64(len(vs[0]))}, x: xformRef, refs: tb}, whole, 511)
}

// TestRefTableRoundTrip: a table decodes to what was encoded, and
// malformed tables are refused.
func TestRefTableRoundTrip(t *testing.T) {
	vs := synthImages(520, 2, 100)
	tb := buildRefTable(vs[0], vs[1], scriptSegments(vs[0], vs[1]))
	got, err := parseRefTable(bytes.NewReader(tb.marshal()), int64(len(vs[0])))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.maps, tb.maps, slices.Equal) || !slices.Equal(got.regions, tb.regions) {
		t.Fatalf("parse(marshal(table)) differs")
	}
	reg := func(start, n, m uint64, kind byte) []byte {
		b := binary.AppendUvarint(nil, start)
		b = binary.AppendUvarint(b, n)
		b = append(b, 0x10, kind, 0x10, 0x10)
		return binary.AppendUvarint(b, m)
	}
	oneMap := []byte{1, 1, 0, 8, 0}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"too many maps", binary.AppendUvarint(nil, maxRefMaps+1)},
		{"too many spans", append([]byte{1}, binary.AppendUvarint(nil, maxRefSpans+1)...)},
		{"empty span", []byte{1, 1, 0, 0, 0, 0}},
		{"span past 4 GiB", append([]byte{1, 1}, binary.AppendUvarint(binary.AppendUvarint(nil, 1<<32-4), 8)...)},
		{"too many regions", append(slices.Clone(oneMap), binary.AppendUvarint(nil, maxRefRegions+1)...)},
		{"region past the image", append(append(slices.Clone(oneMap), 1), reg(0, 1<<20, 0, 0)...)},
		{"unaligned region", append(append(slices.Clone(oneMap), 1), reg(2, 8, 0, 0)...)},
		{"unknown kind", append(append(slices.Clone(oneMap), 1), reg(0, 8, 0, 7)...)},
		{"no such map", append(append(slices.Clone(oneMap), 1), reg(0, 8, 1, 0)...)},
		{"trailing bytes", append(append(append(slices.Clone(oneMap), 1), reg(0, 8, 0, 0)...), 0)},
	} {
		if _, err := parseRefTable(bytes.NewReader(tc.b), 4096); err == nil {
			t.Errorf("%s: parsed", tc.name)
		}
	}
	if _, err := parseRefTable(bytes.NewReader(append(append(slices.Clone(oneMap), 1), reg(0, 8, 0, 0)...)), 4096); err != nil {
		t.Errorf("valid one-region table refused: %v", err)
	}
}

// TestRefsRefusedCleanly: a version-3 patch whose table is damaged, or a
// version-2 reader's view of one, fails with a *CorruptError before
// anything is written.
func TestRefsRefusedCleanly(t *testing.T) {
	vs := synthImages(530, 2, 100)
	p, err := DiffWith(vs[0], vs[1], DiffOptions{FrameSize: 16 << 10})
	if err != nil || p[8] != nodeVersion3 {
		t.Fatalf("DiffWith = version %d, %v", p[8], err)
	}
	for _, tc := range []struct {
		name string
		edit func(p []byte)
	}{
		{"table length too large", func(p []byte) { binary.LittleEndian.PutUint32(p[nodeHeaderSize:], maxRefTable+1) }},
		{"table bytes damaged", func(p []byte) { p[nodeHeaderSize+10] ^= 0xFF }},
		{"table cut short", func(p []byte) { binary.LittleEndian.PutUint32(p[nodeHeaderSize:], 3) }},
	} {
		q := slices.Clone(p)
		tc.edit(q)
		w := &flash{bs: 4096}
		_, err := Apply(context.Background(), bytes.NewReader(vs[0]), int64(len(vs[0])), readers([][]byte{q}), w, Options{BlockSize: 4096})
		var ce *CorruptError
		if !errors.As(err, &ce) && !errors.Is(err, ErrTargetMismatch) {
			t.Errorf("%s: Apply = %v, want a *CorruptError", tc.name, err)
		}
		if len(w.written) > 0 && !errors.As(err, &ce) {
			t.Errorf("%s: %d blocks written", tc.name, len(w.written))
		}
	}
}

// FuzzRefTable decodes arbitrary reference tables: no panic, and what
// decodes encodes back to a table that decodes the same.
func FuzzRefTable(f *testing.F) {
	vs := synthImages(540, 2, 40)
	f.Add(buildRefTable(vs[0], vs[1], scriptSegments(vs[0], vs[1])).marshal())
	for kind := range refKinds {
		f.Add([]byte{1, 1, 0, 8, 0, 1, 0, 16, 0x10, byte(kind), 0x10, 0x10, 0})
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := parseRefTable(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		back, err := parseRefTable(bytes.NewReader(tb.marshal()), 1<<16)
		if err != nil || !slices.Equal(back.regions, tb.regions) || !slices.EqualFunc(back.maps, tb.maps, slices.Equal) {
			t.Fatalf("parse(marshal(table)) = %v", err)
		}
		p := make([]byte, 1<<16)
		for i := range p {
			p[i] = byte(i * 7)
		}
		tb.project(p, 0)
	})
}

// FuzzFindELFs feeds arbitrary images to the encoder's ELF search and
// table building (host side, but it reads whatever a file system holds):
// no panic, and every table it builds parses back.
func FuzzFindELFs(f *testing.F) {
	for _, name := range []string{"refs", "arm"} {
		old, err := os.ReadFile(filepath.Join("testdata", name+".old"))
		if err != nil {
			f.Fatal(err)
		}
		nw, err := os.ReadFile(filepath.Join("testdata", name+".new"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(old, nw)
	}
	f.Fuzz(func(t *testing.T, old, nw []byte) {
		if len(old) > 1<<16 || len(nw) > 1<<16 {
			return
		}
		for _, e := range findELFs(old) {
			if e.base < 0 || e.end > int64(len(old)) {
				t.Fatalf("ELF file [%d,%d) outside the %d-byte image", e.base, e.end, len(old))
			}
		}
		// One match of the common length (the suffix search is not what
		// this fuzzes, and it is slow under the fuzzer's instrumentation).
		n := int64(min(len(old), len(nw)))
		tb := buildRefTable(old, nw, []segment{{0, n / 2, n / 2}, {n / 2, n - n/2, 0}})
		if tb == nil {
			return
		}
		if _, err := parseRefTable(bytes.NewReader(tb.marshal()), int64(len(old))); err != nil {
			t.Fatalf("built table does not parse: %v", err)
		}
		tb.project(slices.Clone(old), 0)
	})
}

// TestRefsWindow: programs followed by much more data than they take (an
// image where one program changes beside a large unchanged rest). The
// projected pass then searches only the window the programs span: its
// script still tiles new, the patch is version 3, applies byte-exact (and
// the same in place), and keeps reference correction's gain.
func TestRefsWindow(t *testing.T) {
	vs := synthImages(700, 2, 300)
	rest := image(9, 6*len(vs[1]))
	old := append(slices.Clone(vs[0]), rest...)
	newRest := slices.Clone(rest)
	newRest[len(newRest)/2] ^= 0x5a
	new := append(slices.Clone(vs[1]), newRest...)

	plain := scriptSegments(old, new)
	tab := buildRefTable(old, new, plain)
	if tab == nil || len(tab.regions) == 0 {
		t.Fatal("no reference table for the programs")
	}
	if end := tab.regions[len(tab.regions)-1].end; end*4 > int64(len(old))*3 {
		t.Fatalf("regions end at %d of %d: the window is not small", end, len(old))
	}
	p := slices.Clone(old)
	tab.project(p, 0)
	segs := refSegments(p, new, plain, tab)
	var at int64
	for _, s := range segs {
		if s.newPos != at || s.n <= 0 || s.old >= 0 && s.old+s.n > int64(len(old)) {
			t.Fatalf("segment %+v at new position %d: the script does not tile new", s, at)
		}
		at += s.n
	}
	if at != int64(len(new)) {
		t.Fatalf("script covers %d of %d bytes", at, len(new))
	}

	opts := DiffOptions{FrameSize: 16 << 10, DigestBlock: 4 << 10}
	pw, err := DiffWith(old, new, opts)
	if err != nil {
		t.Fatal(err)
	}
	o2 := opts
	o2.Format = FormatNode2
	p2, err := DiffWith(old, new, o2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes with reference correction in the window, %d without", len(pw), len(p2))
	if pw[8] != nodeVersion3 {
		t.Errorf("version %d, want 3", pw[8])
	}
	if len(pw)*4 > len(p2)*3 {
		t.Errorf("%d bytes with reference correction in the window, %d without: want at most 3/4", len(pw), len(p2))
	}
	got, err := Patch(old, bytes.NewReader(pw))
	if err != nil || !bytes.Equal(got, new) {
		t.Fatalf("Patch = %d bytes, %v; want the new image", len(got), err)
	}
	o, n := slices.Clone(old), slices.Clone(new)
	opts.InPlace = true
	pi, err := DiffWith(o, n, opts)
	if err != nil || !bytes.Equal(pi, pw) || !bytes.Equal(o, old) || !bytes.Equal(n, new) {
		t.Fatalf("in place: %v, same patch %v, images put back %v %v", err, bytes.Equal(pi, pw), bytes.Equal(o, old), bytes.Equal(n, new))
	}
}
