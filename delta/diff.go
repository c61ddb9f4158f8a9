package delta

import (
	"encoding/binary"
	"math/bits"
	"runtime"
	"slices"
	"sync"
)

// ctrl is one bsdiff control entry: add bytes of old (from the current old
// position) plus the diff stream, then copy bytes of the extra stream, then
// move the old position by seek.
type ctrl struct{ add, copy, seek int64 }

// matcher finds, for a position in new, the longest match in old.
type matcher struct {
	old []byte
	sa  []int32
}

// matchLen returns the length of the common prefix of a and b, eight
// bytes at a time.
func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// search returns the position in old and the length of the longest prefix
// of s that occurs in old. It is bsdiff's binary search over the suffix
// array, deciding exactly as bsdiff does (a suffix that is a prefix of s,
// or s of it, counts as not less), but every suffix between lo and hi
// shares at least min(llo, lhi) bytes with s, so comparisons start there
// instead of at the first byte: long matches cost their length once, not
// once per step.
func (m *matcher) search(s []byte) (pos, n int) {
	lo, hi := 0, len(m.sa)-1
	if hi < 0 {
		return 0, 0
	}
	llo := matchLen(m.old[m.sa[lo]:], s)
	lhi := matchLen(m.old[m.sa[hi]:], s)
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		suf := m.old[m.sa[mid]:]
		k := min(llo, lhi)
		l := k + matchLen(suf[k:], s[k:])
		if l < len(suf) && l < len(s) && suf[l] < s[l] {
			lo, llo = mid, l
		} else {
			hi, lhi = mid, l
		}
	}
	if llo > lhi {
		return int(m.sa[lo]), llo
	}
	return int(m.sa[hi]), lhi
}

// bsdiffScript computes the control entries that turn old into new, with
// Colin Percival's bsdiff search: extend approximate matches found through
// the suffix array of old, so that the diff stream is mostly zeros. Only the
// first returned entry may have add+copy == 0 (a bare seek).
func bsdiffScript(old, new []byte) []ctrl {
	m := &matcher{old: old, sa: suffixArray(old)}
	return m.script(new)
}

// scriptSegments is bsdiffScript for the node format, as segments: new is
// cut into one part per CPU (of at least 1 MiB) whose scripts are searched
// in parallel in the one suffix array. A part starts without the previous
// match's offset, which costs a few bytes at each cut.
func scriptSegments(old, new []byte) []segment {
	m := &matcher{old: old, sa: suffixArray(old)}
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

// script is bsdiffScript's search for new in m's old image.
func (m *matcher) script(new []byte) []ctrl {
	old := m.old
	oldSize, newSize := len(old), len(new)
	var out []ctrl
	var scan, n, pos, lastScan, lastPos, lastOffset int
	for scan < newSize {
		oldScore := 0
		scan += n
		scsc := scan
		for ; scan < newSize; scan++ {
			pos, n = m.search(new[scan:])
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
	return out
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
