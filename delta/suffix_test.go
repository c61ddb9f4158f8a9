package delta

import (
	"index/suffixarray"
	"slices"
	"testing"
)

// TestSuffixArray compares the standard library's array, taken from the
// index and read back as it is written, with prefix doubling, and checks the streaming parser on
// writes split at every size.
func TestSuffixArray(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("a"), []byte("banana"), []byte("aaaaaaaaaaaa"), image(300, 50_000)} {
		std, ok := stdSuffixArray(b)
		if !ok {
			t.Fatalf("stdSuffixArray(%d bytes) failed", len(b))
		}
		if want := doublingSuffixArray(b); !slices.Equal(std, want) {
			t.Fatalf("stdSuffixArray(%d bytes) differs from prefix doubling", len(b))
		}
		if sa, ok := indexArray(suffixarray.New(b), len(b)); !ok || !slices.Equal(sa, std) {
			t.Fatalf("indexArray(%d bytes) = ok %v, or differs from the serialized array", len(b), ok)
		}
		if len(b) > 1000 {
			continue
		}
		for split := 1; split < 24; split++ {
			p := &saParser{b: b}
			w := splitWriter{p, split}
			if err := suffixarray.New(b).Write(w); err != nil || !p.done() || !slices.Equal(p.sa, std) {
				t.Fatalf("%q written in %d-byte pieces: %v, done %v", b, split, err, p.done())
			}
		}
	}
	p := &saParser{b: []byte("abc")}
	if _, err := p.Write(make([]byte, 30)); err == nil {
		t.Fatalf("saParser accepted a wrong length")
	}
}

// stdSuffixArray is the standard library's array read back from its
// serialization.
func stdSuffixArray(b []byte) ([]int32, bool) {
	return parsedSuffixArray(suffixarray.New(b), b)
}

type splitWriter struct {
	p *saParser
	n int
}

func (w splitWriter) Write(q []byte) (int, error) {
	for i := 0; i < len(q); i += w.n {
		if _, err := w.p.Write(q[i:min(i+w.n, len(q))]); err != nil {
			return i, err
		}
	}
	return len(q), nil
}

// TestDiffInPlaceRestores: with InPlace, DiffWith transforms the images in
// place for its ARM pass and gives them back unchanged, even when old and
// new are the same slice.
func TestDiffInPlaceRestores(t *testing.T) {
	old := armImage(310, 100_000)
	nw := mutate(old, 311, 50)
	for _, tc := range []struct {
		name     string
		old, new []byte
	}{{"distinct", old, nw}, {"same", old, old}} {
		o0, n0 := slices.Clone(tc.old), slices.Clone(tc.new)
		p, err := DiffWith(tc.old, tc.new, DiffOptions{InPlace: true, FrameSize: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tc.old, o0) || !slices.Equal(tc.new, n0) {
			t.Fatalf("%s: images changed", tc.name)
		}
		ref, _ := DiffWith(o0, n0, DiffOptions{FrameSize: 16 << 10})
		if !slices.Equal(p, ref) {
			t.Fatalf("%s: in-place patch differs from the copying one", tc.name)
		}
	}
}
