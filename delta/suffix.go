package delta

import (
	"bytes"
	"encoding/binary"
	"index/suffixarray"
)

// suffixArray returns the suffix array of b: the start offsets of all
// non-empty suffixes of b in lexicographic order.
//
// The standard library's index/suffixarray builds it with SA-IS (linear
// time, about 1 s for 10 MiB) but does not export it; its Write method
// serializes it, as a varint length, the data, then chunks of uvarints each
// led by a varint chunk size in a 10-byte slot. suffixArray reads it back
// from there and checks it; should that layout ever change, it falls back
// to prefix doubling (several times slower, same result). A test compares
// both on every run.
func suffixArray(b []byte) []int32 {
	if sa, ok := stdSuffixArray(b); ok {
		return sa
	}
	return doublingSuffixArray(b)
}

func stdSuffixArray(b []byte) ([]int32, bool) {
	var buf bytes.Buffer
	buf.Grow(6 * len(b))
	if err := suffixarray.New(b).Write(&buf); err != nil {
		return nil, false
	}
	p := buf.Bytes()
	const slot = binary.MaxVarintLen64
	if len(p) < slot {
		return nil, false
	}
	if n, k := binary.Varint(p); k <= 0 || n != int64(len(b)) {
		return nil, false
	}
	p = p[slot:]
	if len(p) < len(b) || !bytes.Equal(p[:len(b)], b) {
		return nil, false
	}
	p = p[len(b):]
	sa := make([]int32, 0, len(b))
	for len(p) > 0 {
		if len(p) < slot {
			return nil, false
		}
		size, k := binary.Varint(p)
		if k <= 0 || size < slot || size > int64(len(p)) {
			return nil, false
		}
		chunk := p[slot:size]
		for len(chunk) > 0 {
			v, k := binary.Uvarint(chunk)
			if k <= 0 || v >= uint64(len(b)) {
				return nil, false
			}
			sa = append(sa, int32(v))
			chunk = chunk[k:]
		}
		p = p[size:]
	}
	if len(sa) != len(b) {
		return nil, false
	}
	return sa, true
}

// doublingSuffixArray returns the suffix array of b: the start offsets of all
// non-empty suffixes of b in lexicographic order.
//
// It uses prefix doubling (Manber–Myers) with two counting-sort passes per
// round: O(n log L) time, where L is the longest repeat in b, and 4 int32
// arrays of len(b). It runs on the host only, where memory is plentiful.
func doublingSuffixArray(b []byte) []int32 {
	n := len(b)
	sa := make([]int32, n)
	if n == 0 {
		return sa
	}
	rank := make([]int32, n)
	tmp := make([]int32, n)
	cnt := make([]int32, max(n, 256)+1)

	// Round 0: sort by the first byte.
	for _, c := range b {
		cnt[int(c)+1]++
	}
	for i := 1; i <= 256; i++ {
		cnt[i] += cnt[i-1]
	}
	for i, c := range b {
		sa[cnt[c]] = int32(i)
		cnt[c]++
	}
	rank[sa[0]] = 0
	classes := int32(1)
	for i := 1; i < n; i++ {
		if b[sa[i]] != b[sa[i-1]] {
			classes++
		}
		rank[sa[i]] = classes - 1
	}

	for k := 1; int(classes) < n; k <<= 1 {
		// Order by the second key rank[i+k]: suffixes with i+k >= n come
		// first (their second key is empty), in increasing i, then the
		// others in the order of sa shifted by k.
		p := 0
		for i := n - k; i < n; i++ {
			tmp[p] = int32(i)
			p++
		}
		for _, s := range sa {
			if int(s) >= k {
				tmp[p] = s - int32(k)
				p++
			}
		}
		// Stable counting sort of tmp by the first key rank[i].
		c := cnt[:classes+1]
		clear(c)
		for _, r := range rank {
			c[r+1]++
		}
		for i := 1; i < len(c); i++ {
			c[i] += c[i-1]
		}
		for _, s := range tmp {
			r := rank[s]
			sa[c[r]] = s
			c[r]++
		}
		// New ranks: (rank[i], rank[i+k]) pairs.
		second := func(i int32) int32 {
			if int(i)+k < n {
				return rank[int(i)+k]
			}
			return -1
		}
		tmp[sa[0]] = 0
		classes = 1
		for i := 1; i < n; i++ {
			a, b := sa[i-1], sa[i]
			if rank[a] != rank[b] || second(a) != second(b) {
				classes++
			}
			tmp[b] = classes - 1
		}
		rank, tmp = tmp, rank
	}
	return sa
}
