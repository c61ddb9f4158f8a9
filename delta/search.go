package delta

import (
	"encoding/binary"
	"math/bits"
)

// matcher finds, for a position in new, the longest match in old.
type matcher struct {
	old []byte
	sa  []int32
	// bucket[k] is the first index in sa of the suffixes that start with
	// the two bytes k>>8, k&0xff; bucket[k+1]-1 the last (the one-byte
	// suffix at the end of old, which belongs to no bucket, sits before
	// the bucket of its byte followed by 0x00 and is skipped with end).
	bucket []int32
	end    []int32
}

// newMatcher indexes old: its suffix array and the two-byte buckets of it.
func newMatcher(old []byte) *matcher {
	m := &matcher{old: old, sa: suffixArray(old)}
	n := len(old)
	if n < 2 {
		return m
	}
	cnt := make([]int32, 1<<16)
	k := uint32(old[0])
	for _, c := range old[1:] {
		k = k<<8&0xff00 | uint32(c)
		cnt[k]++
	}
	m.bucket, m.end = make([]int32, 1<<16), cnt
	off := int32(0)
	for k := range cnt {
		if k&0xff == 0 && int(old[n-1]) == k>>8 {
			off++ // the one-byte suffix sorts before every longer one
		}
		m.bucket[k] = off
		off += cnt[k]
		m.end[k] = off
	}
	return m
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
// of s that occurs in old, and the number of bytes it compared (its work,
// for tests). It is bsdiff's binary search over the suffix array, with two
// changes:
//
//   - Suffixes are ordered as the suffix array sorts them: a suffix that is
//     a proper prefix of s is less than s. Debian's bsdiff (and this search
//     until it was measured on ext4 images) compares only the common length
//     and counts such a suffix as not less, so that a run of zeros in new
//     steers the search to the few zeros at the very end of old (an ext4 or
//     tar image ends with them) instead of the long runs inside it: the
//     match found is a few bytes long, the scan loop then searches again at
//     every byte of the run, and each search compares the whole run at
//     every step. On a 27 MB tar pair that was 5.6 GB of comparisons (98 %
//     of them in searches that returned 2 or 3 bytes), on the ext4 pair
//     more than 7 minutes; ordered properly, 0.1 GB and 22 s.
//   - The range starts at the suffixes that share s's first two bytes
//     (a 64 Ki-entry table built with the array), which saves the first
//     levels of the search.
//
// Every suffix between lo and hi shares at least min(llo, lhi) bytes with
// s, so comparisons start there instead of at the first byte.
func (m *matcher) search(s []byte) (pos, n, work int) {
	lo, hi := 0, len(m.sa)-1
	if hi < 0 {
		return 0, 0, 0
	}
	if len(s) >= 2 && m.bucket != nil {
		k := int(s[0])<<8 | int(s[1])
		if b, e := int(m.bucket[k]), int(m.end[k]); b < e {
			lo, hi = b, e-1
		}
	}
	llo := matchLen(m.old[m.sa[lo]:], s)
	lhi := matchLen(m.old[m.sa[hi]:], s)
	work = llo + lhi + 2
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		suf := m.old[m.sa[mid]:]
		k := min(llo, lhi)
		l := k + matchLen(suf[k:], s[k:])
		work += l - k + 1
		if l < len(s) && (l == len(suf) || suf[l] < s[l]) {
			lo, llo = mid, l
		} else {
			hi, lhi = mid, l
		}
	}
	if llo > lhi {
		return int(m.sa[lo]), llo, work
	}
	return int(m.sa[hi]), lhi, work
}
