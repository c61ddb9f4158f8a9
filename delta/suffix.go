package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"index/suffixarray"
	"reflect"
	"unsafe"
)

// suffixArray returns the suffix array of b: the start offsets of all
// non-empty suffixes of b in lexicographic order.
//
// The standard library's index/suffixarray builds it with SA-IS (linear
// time, about 1 s for 10 MiB) but does not export it. suffixArray takes
// the index's own array (an unexported []int32 field, found by name and
// type through reflect: no copy, so the peak is 4 bytes per byte of b);
// should the field change, it reads the array back from Index.Write's
// serialization, as a varint length, the data, then chunks of uvarints
// each led by a varint chunk size in a 10-byte slot (a copy: 8 bytes per
// byte at the peak); should that layout change too, it falls back to
// prefix doubling (several times slower, same result). A test compares
// the three on every run.
func suffixArray(b []byte) []int32 {
	idx := suffixarray.New(b)
	if sa, ok := indexArray(idx, len(b)); ok {
		return sa
	}
	if sa, ok := parsedSuffixArray(idx, b); ok {
		return sa
	}
	return doublingSuffixArray(b)
}

// indexArray returns the int32 suffix array inside idx, if the index
// still holds it as the field sa.int32 of n entries.
func indexArray(idx *suffixarray.Index, n int) ([]int32, bool) {
	f := reflect.ValueOf(idx).Elem().FieldByName("sa")
	if f.Kind() != reflect.Struct {
		return nil, false
	}
	f = f.FieldByName("int32")
	if !f.IsValid() || f.Type() != reflect.TypeFor[[]int32]() {
		return nil, false
	}
	sa := *(*[]int32)(unsafe.Pointer(f.UnsafeAddr()))
	return sa, len(sa) == n
}

// parsedSuffixArray reads idx's array back from its serialization.
func parsedSuffixArray(idx *suffixarray.Index, b []byte) ([]int32, bool) {
	p := &saParser{b: b, sa: make([]int32, 0, len(b))}
	if err := idx.Write(p); err != nil || !p.done() {
		return nil, false
	}
	return p.sa, true
}

// saSlot is the size of the fixed varint slots of Index.Write's layout.
const saSlot = binary.MaxVarintLen64

// saParser reads the suffix array out of Index.Write's output as it is
// written, so that the serialized form (about 6 bytes per input byte) is
// never held: the peak is the index's own array and this one.
type saParser struct {
	b     []byte
	sa    []int32
	stage int   // 0: length slot, 1: data, 2: chunk slot, 3: chunk body
	need  int64 // bytes left in the data or the chunk body
	carry []byte
	bad   bool
}

var errSALayout = errors.New("delta: unexpected suffix array layout")

func (p *saParser) Write(q []byte) (int, error) {
	n := len(q)
	for len(q) > 0 && !p.bad {
		switch p.stage {
		case 0, 2:
			k := min(saSlot-len(p.carry), len(q))
			p.carry, q = append(p.carry, q[:k]...), q[k:]
			if len(p.carry) < saSlot {
				continue
			}
			v, k2 := binary.Varint(p.carry)
			p.carry = p.carry[:0]
			switch {
			case k2 <= 0:
				p.bad = true
			case p.stage == 0:
				p.bad = v != int64(len(p.b))
				p.stage, p.need = 1, v
			default:
				p.bad = v < saSlot
				p.stage, p.need = 3, v-saSlot
			}
		case 1:
			k := min(p.need, int64(len(q)))
			at := int64(len(p.b)) - p.need
			p.bad = !bytes.Equal(q[:k], p.b[at:at+k])
			p.need, q = p.need-k, q[k:]
		case 3:
			k := min(p.need, int64(len(q)))
			body := q[:k]
			p.need, q = p.need-k, q[k:]
			if len(p.carry) > 0 {
				body = append(p.carry, body...)
				p.carry = p.carry[:0]
			}
			for len(body) > 0 {
				v, k := binary.Uvarint(body)
				if k == 0 {
					p.carry = append(p.carry, body...)
					break
				}
				if k < 0 || v >= uint64(len(p.b)) || len(p.sa) == len(p.b) {
					p.bad = true
					break
				}
				p.sa = append(p.sa, int32(v))
				body = body[k:]
			}
			p.bad = p.bad || (p.need == 0 && len(p.carry) > 0)
		}
		if (p.stage == 1 || p.stage == 3) && p.need == 0 {
			p.stage = 2
		}
	}
	if p.bad {
		return 0, errSALayout
	}
	return n, nil
}

// done reports whether a whole, well-formed array was read.
func (p *saParser) done() bool {
	return !p.bad && p.stage == 2 && len(p.carry) == 0 && len(p.sa) == len(p.b)
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
