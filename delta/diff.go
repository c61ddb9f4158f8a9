package delta

import (
	"runtime"
	"slices"
	"sync"
)

// ctrl is one bsdiff control entry: add bytes of old (from the current old
// position) plus the diff stream, then copy bytes of the extra stream, then
// move the old position by seek.
type ctrl struct{ add, copy, seek int64 }

// bsdiffScript computes the control entries that turn old into new, with
// Colin Percival's bsdiff search: extend approximate matches found through
// the suffix array of old, so that the diff stream is mostly zeros. Only the
// first returned entry may have add+copy == 0 (a bare seek).
func bsdiffScript(old, new []byte) []ctrl {
	m := newMatcher(old)
	return m.script(new)
}

// scriptSegments is bsdiffScript for the node format, as segments: new is
// cut into one part per CPU (of at least 1 MiB) whose scripts are searched
// in parallel in the one suffix array. A part starts without the previous
// match's offset, which costs a few bytes at each cut.
func scriptSegments(old, new []byte) []segment {
	m := newMatcher(old)
	parts := max(1, min(runtime.GOMAXPROCS(0), len(new)>>20))
	segs := make([][]segment, parts)
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := len(new)*i/parts, len(new)*(i+1)/parts
		wg.Go(func() {
			segs[i] = segments(m.script(new[lo:hi]))
			for j := range segs[i] {
				segs[i][j].newPos += int64(lo)
			}
		})
	}
	wg.Wait()
	return slices.Concat(segs...)
}

// longMatch is the length from which scan stops searching at every byte
// of a match that does not decide. bsdiff searches again at each byte
// while the best match is about as good as the current alignment (neither
// equal to it nor 8 bytes better); in a run of zeros crossed by an
// alignment that differs in a few bytes that is every byte of the run, and
// each search compares the run again: quadratic in the run length (an ext4
// image is made of such runs). From longMatch bytes on, scan takes the
// match found, shortened by one byte per byte, as the next bytes' best
// match (it is one; only a longer one found inside could differ) for half
// its length, then searches again: a logarithmic number of searches per
// run instead of one per byte.
const longMatch = 64

// script is bsdiffScript's search for new in m's old image.
func (m *matcher) script(new []byte) []ctrl {
	cs, _ := m.scan(new)
	return cs
}

// scan is script, and also returns the bytes its searches compared.
func (m *matcher) scan(new []byte) (out []ctrl, work int64) {
	old := m.old
	oldSize, newSize := len(old), len(new)
	var scan, n, pos, w, lastScan, lastPos, lastOffset int
	for scan < newSize {
		oldScore := 0
		scan += n
		scsc := scan
		skip := 0
		for ; scan < newSize; scan++ {
			if skip > 0 {
				// Inside a long match that did not decide: at the next
				// byte the match found is one byte shorter (see longMatch).
				skip, pos, n = skip-1, pos+1, n-1
			} else {
				pos, n, w = m.search(new[scan:])
				work += int64(w)
				skip = max(0, n/2-longMatch/2)
			}
			for ; scsc < scan+n; scsc++ {
				if scsc+lastOffset < oldSize && scsc+lastOffset >= 0 && old[scsc+lastOffset] == new[scsc] {
					oldScore++
				}
			}
			if (n == oldScore && n != 0) || n > oldScore+8 {
				break
			}
			if scan+lastOffset < oldSize && scan+lastOffset >= 0 && old[scan+lastOffset] == new[scan] {
				oldScore--
			}
		}
		if n == oldScore && scan != newSize {
			continue
		}
		// Extend the previous match forwards and this one backwards.
		s, sf, lenf := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < oldSize; {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		lenb := 0
		if scan < newSize {
			s, sb := 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		if lastScan+lenf > scan-lenb {
			overlap := (lastScan + lenf) - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+lenf-overlap+i] == old[lastPos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		c := ctrl{
			add:  int64(lenf),
			copy: int64((scan - lenb) - (lastScan + lenf)),
			seek: int64((pos - lenb) - (lastPos + lenf)),
		}
		if c.add+c.copy == 0 && len(out) > 0 {
			out[len(out)-1].seek += c.seek
		} else if c.add+c.copy > 0 || c.seek != 0 {
			out = append(out, c)
		}
		lastScan = scan - lenb
		lastPos = pos - lenb
		lastOffset = pos - scan
	}
	return out, work
}

// scriptStreams expands control entries into bsdiff's diff and extra
// streams.
func scriptStreams(old, new []byte, cs []ctrl) (diff, extra []byte) {
	var np, op int64
	for _, c := range cs {
		for i := int64(0); i < c.add; i++ {
			diff = append(diff, new[np+i]-old[op+i])
		}
		extra = append(extra, new[np+c.add:np+c.add+c.copy]...)
		np += c.add + c.copy
		op += c.add + c.seek
	}
	return diff, extra
}
