package delta

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// scatter writes short random blocks (1 to 64 bytes) at random places of
// b, the last 4 KiB excepted: with zeros in b, an image as a file system
// holds them, long runs and a run at the end.
func scatter(b []byte, seed uint64, edits int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	for range edits {
		p := r.IntN(len(b) - 4096)
		for i := range 1 + r.IntN(64) {
			b[p+i] = byte(r.Uint32())
		}
	}
	return b
}

// TestSearchLongRuns: on 8 MiB images of zeros with short blocks of data
// the diff's searches compare a few bytes per byte of new, not the run
// length per byte. Two ways it was quadratic in the run length: the search
// preferred the zeros at the very end of old (2-byte matches inside every
// run, so a search at each byte), and the scan loop searched again at each
// byte of a run that the current alignment nearly matched. The bound is on
// work done (bytes compared), not on time.
func TestSearchLongRuns(t *testing.T) {
	const size = 8 << 20
	base := scatter(make([]byte, size), 1, 4000)
	shifted := scatter(bytes.Clone(base), 2, 40)
	shifted = append(shifted[:size/2], append(make([]byte, 3000), shifted[size/2:]...)...)
	for _, tc := range []struct {
		name     string
		old, new []byte
		maxCtrl  int
	}{
		// 40 blocks changed and 3000 zeros inserted: a handful of entries.
		{"edits", base, shifted, 100},
		// The same runs and blocks at other places: one entry per block.
		{"other", base, scatter(make([]byte, size), 3, 4000), 8000},
	} {
		m := newMatcher(tc.old)
		cs, work := m.scan(tc.new)
		// Measured: 9 and 23 MB compared for 8 MiB (1.1 and 2.7 bytes per
		// byte); before, 3.1 GB in "other" (370 per byte). 16 bytes per
		// byte leaves room for changes of the search.
		if limit := int64(16 * len(tc.new)); work > limit {
			t.Errorf("%s: scan compared %d bytes for %d bytes of new, want <= %d", tc.name, work, len(tc.new), limit)
		}
		if len(cs) > tc.maxCtrl {
			t.Errorf("%s: scan produced %d control entries, want <= %d", tc.name, len(cs), tc.maxCtrl)
		}
		p, err := DiffWith(tc.old, tc.new, DiffOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Patch(tc.old, bytes.NewReader(p))
		if err != nil || !bytes.Equal(got, tc.new) {
			t.Fatalf("%s: Patch = %v, output equal %v", tc.name, err, bytes.Equal(got, tc.new))
		}
		t.Logf("%s: %d control entries, %d bytes compared, patch %d bytes", tc.name, len(cs), work, len(p))
	}
}

// TestSearchFindsLongest compares search with a brute-force longest match
// on small images made of runs and repeats, where suffixes of old are
// prefixes of the searched text.
func TestSearchFindsLongest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for round := range 200 {
		gen := func(n int) []byte {
			b := make([]byte, 0, n)
			for len(b) < n {
				c := byte(r.IntN(3))
				for range 1 + r.IntN(40) {
					b = append(b, c)
				}
			}
			return b[:n]
		}
		old, s := gen(1+r.IntN(300)), gen(1+r.IntN(300))
		if round%2 == 0 {
			old = append(old, s[:r.IntN(len(s))]...) // old ends with a prefix of s
		}
		m := newMatcher(old)
		for at := range s {
			q := s[at:]
			want := 0
			for p := range old {
				want = max(want, matchLen(old[p:], q))
			}
			pos, n, _ := m.search(q)
			if n != want || !bytes.Equal(old[pos:pos+n], q[:n]) {
				t.Fatalf("round %d: search(s[%d:]) = pos %d, n %d; want n %d", round, at, pos, n, want)
			}
		}
	}
}

// TestSearchBuckets: the table of where each two-byte prefix starts in the
// suffix array only narrows the range: searches with and without it find
// matches of the same length (of equal ones, maybe another), on an image
// with runs, repeats and a tail that is a prefix of what is searched.
func TestSearchBuckets(t *testing.T) {
	old := append(scatter(image(7, 300_000), 8, 50), make([]byte, 3000)...)
	nw := mutate(old, 9, 200)
	m := newMatcher(old)
	plain := &matcher{old: m.old, sa: m.sa}
	for at := 0; at < len(nw); at += 7 {
		q := nw[at:]
		pos, n, _ := m.search(q)
		wpos, wn, _ := plain.search(q)
		if n != wn || !bytes.Equal(old[pos:pos+n], q[:n]) {
			t.Fatalf("search(new[%d:]) = %d, %d; without the table %d, %d", at, pos, n, wpos, wn)
		}
	}
	for _, q := range [][]byte{{0}, {0, 0}, {0xff, 0xfe}, {1, 2, 3}, nil} {
		pos, n, _ := m.search(q)
		wpos, wn, _ := plain.search(q)
		if n != wn || !bytes.Equal(old[pos:pos+n], q[:n]) || !bytes.Equal(old[wpos:wpos+wn], q[:wn]) {
			t.Fatalf("search(%x) = %d, %d; without the table %d, %d", q, pos, n, wpos, wn)
		}
	}
}
