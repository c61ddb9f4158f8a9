package journal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"testing"

	"meterupd/boards/hw"
	"meterupd/journal/internal/flashtest"
)

// state is a stand-in for the agent's record: a counter and some bulk.
type state struct {
	N    int    `cbor:"n"`
	Slot string `cbor:"slot"`
	Pad  []byte `cbor:"pad,omitempty"`
}

func st(n, pad int) state {
	return state{N: n, Slot: "AB"[n%2 : n%2+1], Pad: bytes.Repeat([]byte{byte(n)}, pad)}
}

func testOpts(t testing.TB) Options {
	return Options{Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func load(t testing.TB, j *Journal) state {
	t.Helper()
	var s state
	if err := j.Load(&s); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// geometries used across tests: erase size, write size, blocks.
var geometries = []struct {
	name         string
	erase, write int64
	blocks       int64
	nand         bool
}{
	{"nor-ws1", 4096, 1, 8, false},
	{"nor-ws4", 4096, 4, 8, false},
	{"nor-ws16", 4096, 16, 8, false},
	{"nand-ws256", 16384, 256, 2, true},
	{"nand-ws2048", 128 << 10, 2048, 2, true},
}

func TestFormatOpenLoadAcrossWriteSizes(t *testing.T) {
	for _, g := range geometries {
		t.Run(g.name, func(t *testing.T) {
			f := flashtest.New(g.erase*g.blocks, g.erase, g.write, 1)
			f.SetNAND(g.nand)
			j, err := Format(f, st(0, 10), testOpts(t))
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			if got := j.Seq(); got != 1 {
				t.Errorf("Seq after Format = %d, want 1", got)
			}
			for i := 1; i <= 20; i++ {
				if err := j.Commit(st(i, 300)); err != nil {
					t.Fatalf("Commit(%d): %v", i, err)
				}
			}
			j2, err := Open(f, testOpts(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := load(t, j2); got.N != 20 || len(got.Pad) != 300 {
				t.Errorf("Load = N %d pad %d, want N 20 pad 300", got.N, len(got.Pad))
			}
			if j2.Seq() != j.Seq() {
				t.Errorf("reopened Seq = %d, want %d", j2.Seq(), j.Seq())
			}
			rs, err := j2.Records()
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			for i := 1; i < len(rs); i++ {
				if rs[i].Seq <= rs[i-1].Seq {
					t.Fatalf("Records not oldest first: %d after %d", rs[i].Seq, rs[i-1].Seq)
				}
				if rs[i].Offset%g.write != 0 {
					t.Errorf("record %d at %d not aligned to write size %d", rs[i].Seq, rs[i].Offset, g.write)
				}
			}
			var last state
			if err := Decode(rs[len(rs)-1].Data, &last); err != nil || last.N != 20 {
				t.Errorf("Decode(newest) = %+v, %v; want N 20", last.N, err)
			}
		})
	}
}

func TestOpenRefusesWithoutWriting(t *testing.T) {
	const es, ws = 4096, 4
	newer := func() []byte {
		f := flashtest.New(4*es*4, es, ws, 1)
		j, err := Format(f, st(1, 0), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = j
		img := f.Bytes()
		// Rewrite record 1 as version 2, with valid CRCs.
		g, _ := layout(f)
		rec := encodeRecord(g, 7, []byte{0xa0})
		rec[4] = 2
		putHeaderCRC(rec)
		for i := range img {
			img[i] = 0xFF
		}
		copy(img[g.areaOff(1):], rec)
		return img
	}
	torn := func() []byte {
		f := flashtest.New(4*es*4, es, ws, 1)
		if _, err := Format(f, st(1, 0), Options{}); err != nil {
			t.Fatal(err)
		}
		f.FlipBit(40, 3)
		return f.Bytes()
	}
	foreign := func() []byte {
		img := bytes.Repeat([]byte{0xFF}, 4*es*4)
		copy(img[es*4+100:], "hsqs squashfs superblock, not ours")
		return img
	}
	erased := func() []byte { return bytes.Repeat([]byte{0xFF}, 4*es*4) }
	for _, tc := range []struct {
		name string
		img  func() []byte
		want error
	}{
		{"erased", erased, ErrEmpty},
		{"foreign", foreign, ErrForeign},
		{"newer", newer, ErrNewerVersion},
		{"corrupt", torn, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := flashtest.New(4*es*4, es, ws, 1)
			img := tc.img()
			f.Load(img)
			_, err := Open(f, testOpts(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(f.Bytes(), img) {
				t.Errorf("Open changed the flash")
			}
			if f.Programs != 0 || f.Erases != 0 {
				t.Errorf("Open did %d programs, %d erases; want none", f.Programs, f.Erases)
			}
		})
	}
}

// putHeaderCRC recomputes the header CRC of a record after a test edits it.
func putHeaderCRC(rec []byte) {
	sum := crcC(rec[:28])
	rec[28], rec[29], rec[30], rec[31] = byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24)
}

func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		size, es, ws int64
		opt          Options
		want         error
	}{
		{4096, 4096, 1, Options{}, ErrGeometry},                // one block
		{8192, 4096, 3, Options{}, ErrGeometry},                // write size does not divide
		{8192, 0, 1, Options{}, ErrGeometry},                   // no erase size
		{8192, 4096, 1, Options{}, nil},                        // 2 areas of 4 KiB, MaxRecord clamped
		{8192, 4096, 1, Options{MaxRecord: 4096}, ErrGeometry}, // does not fit the area
		{1 << 20, 4096, 1, Options{MaxRecord: MaxRecordLimit + 1}, ErrGeometry},
	} {
		t.Run(fmt.Sprintf("%d/%d/%d/%d", tc.size, tc.es, tc.ws, tc.opt.MaxRecord), func(t *testing.T) {
			f := lyingFlash{flashtest.New(8192, 4096, 1, 1), tc.size, tc.es, tc.ws}
			_, err := Format(f, st(1, 0), tc.opt)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Format = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCommitTooLargeChangesNothing(t *testing.T) {
	f := flashtest.New(8*4096, 4096, 1, 1)
	j, err := Format(f, st(0, 0), Options{MaxRecord: 512})
	if err != nil {
		t.Fatal(err)
	}
	before := f.Bytes()
	if err := j.Commit(st(1, 600)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Commit(600 B) = %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(before, f.Bytes()) {
		t.Errorf("a refused commit changed the flash")
	}
	if got := load(t, j); got.N != 0 {
		t.Errorf("Load = %d, want 0", got.N)
	}
}

func TestAppendsThenSwitchesAreas(t *testing.T) {
	// 2 areas of 64 KiB, a ~300-byte record: erases only when an area fills.
	f := flashtest.New(2*64<<10, 64<<10, 1, 1)
	j, err := Format(f, st(0, 280), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f0 := *f
	for i := 1; i <= 1000; i++ {
		if err := j.Commit(st(i, 280)); err != nil {
			t.Fatalf("Commit(%d): %v", i, err)
		}
	}
	rec := j.g.pad(HeaderSize + int64(len(j.data)))
	perArea := (64 << 10) / rec
	wantErases := 1000 / perArea // first area already holds record 1
	erases := f.Erases - f0.Erases
	if erases < wantErases-1 || erases > wantErases+1 {
		t.Errorf("1000 commits: %d erases, want about %d (%d records of %d B per area)", erases, wantErases, perArea, rec)
	}
	if got := f.Programs - f0.Programs; got != 1000 {
		t.Errorf("1000 commits: %d programs, want 1000", got)
	}
	j2, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, j2); got.N != 1000 {
		t.Errorf("Load = %d, want 1000", got.N)
	}
	_ = hw.ErrNotErased
}

// lyingFlash reports any geometry, to test Open's checks.
type lyingFlash struct {
	*flashtest.Flash
	size, es, ws int64
}

func (f lyingFlash) Size() int64      { return f.size }
func (f lyingFlash) EraseSize() int64 { return f.es }
func (f lyingFlash) WriteSize() int64 { return f.ws }

// same compares two states (cmp.Equal is too slow for the cut loops).
func same(a, b state) bool { return a.N == b.N && a.Slot == b.Slot && bytes.Equal(a.Pad, b.Pad) }

// TestRecordLargerThanMaxRecordOnFlash: a valid record larger than this
// journal's MaxRecord is refused (ErrTooLarge, nothing written) when it is
// the newest, and skipped when a newer record exists.
func TestRecordLargerThanMaxRecordOnFlash(t *testing.T) {
	f := flashtest.New(8*4096, 4096, 1, 1)
	j, err := Format(f, st(1, 10), Options{MaxRecord: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Commit(st(2, 1500)); err != nil {
		t.Fatal(err)
	}
	img := f.Bytes()
	if _, err := Open(f, Options{MaxRecord: 512}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Open(MaxRecord 512) with a 1.5 KiB newest record = %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(img, f.Bytes()) {
		t.Fatal("Open changed the flash")
	}
	if err := j.Commit(st(3, 10)); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(f, Options{MaxRecord: 512})
	if err != nil {
		t.Fatalf("Open(MaxRecord 512) with a newer small record = %v", err)
	}
	if got := load(t, j2); got.N != 3 {
		t.Errorf("Load = %d, want 3", got.N)
	}
}

// crcC is the CRC-32C of the record format, for tests that forge records.
func crcC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
