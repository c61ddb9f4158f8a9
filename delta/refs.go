package delta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// Reference correction (node format version 3), in the manner of
// Chromium's Zucchini: a program holds references to its own addresses —
// A32 branches (B, BL: relative to the instruction), pointers in data and
// literal pools, relocation offsets (absolute). When code or data moves
// between releases, every reference to a moved target changes, although
// the program did not change there. The encoder finds the 32-bit ARM ELF
// files inside the images, matches old addresses to new ones (an
// equivalence map per ELF file, from the bsdiff script between the plain
// images), and ships that map and the regions where references are,
// in a small table after the header. The decoder rewrites every
// reference of the *old* image to where its target went ("projects" it):
// a reference to a target that only moved then reads exactly as in the
// new image, and costs nothing in the diff. Only the source is rewritten;
// the output is the new image as it is, so the projection needs no
// inverse and may be lossy. Frames choose it (bit 29 of the rest length)
// when it is the smallest encoding.
//
// A projection is position-local: a word is rewritten from its own bytes,
// its image offset and the table, so any range of the source can be
// projected on its own (a frame, or what a later chain hop reads).

// refKind is what the words of a region hold.
type refKind byte

const (
	// refData: every aligned 32-bit word whose value lies in the file's
	// address range is taken for a pointer (data, relocations, symbol
	// values).
	refData refKind = iota
	// refCode: A32 code: B and BL words have their relative target
	// projected, other words in the address range (literal pools) are
	// taken for pointers.
	refCode
	// refData64: as refData with 64-bit words (AArch64), the upper half
	// zero.
	refData64
	// refCodeA64: AArch64 code: B and BL (26-bit word offset) have their
	// relative target projected, ADRP (page offset) its target page.
	refCodeA64
	// refThumb: Thumb-2 code: BL, BLX and B.W (T4) halfword pairs have
	// their relative target projected.
	refThumb
	refKinds
)

// refSpan is one run of the equivalence map: old addresses
// [old, old+n) are new addresses [new, new+n).
type refSpan struct{ old, n, new uint32 }

// refMap is the equivalence map of one ELF file, sorted by old address,
// the spans disjoint.
type refMap []refSpan

// refRegion is a run of the old image whose references are projected.
type refRegion struct {
	start, end int64  // old image offsets, start a multiple of 4
	vaddr      uint32 // address of start
	kind       refKind
	lo, hi     uint32 // addresses [lo, hi) are taken for pointers
	m          int    // index of the region's map
}

// refTable is the reference table of a version-3 patch.
type refTable struct {
	regions []refRegion // sorted by start, disjoint
	maps    []refMap
}

// Limits the decoder enforces on a reference table, whatever the patch
// says: they bound its memory (12 bytes per span, 40 per region, 24 per
// map: at most 1.1 MiB; the tar r1→r3 pair needs 8143 spans and 232
// regions, 100 KB) and its decompressed size.
const (
	maxRefMaps    = 1024
	maxRefSpans   = 1 << 16
	maxRefRegions = 1 << 13
	maxRefTable   = 1 << 20 // compressed and decompressed bytes (the tar pairs need 30 KB decompressed)
)

// project returns the new address of old address x: moved by its span
// when a span holds it, else unchanged.
func (m refMap) project(x uint32) uint32 {
	lo, hi := 0, len(m)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m[mid].old <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return x
	}
	s := m[lo-1]
	if x-s.old < s.n {
		return x - s.old + s.new
	}
	// Between spans: unchanged. (Taking the move of the span before
	// instead made the tar r1→r2 patch 6 % larger.)
	return x
}

// isBranch reports whether w is an A32 B or BL (not BLX, condition 0xF).
func isBranch(w uint32) bool { return w>>25&7 == 5 && w>>28 != 0xF }

// project rewrites the references of p, which holds old image bytes
// from offset off (a multiple of 4), in place.
func (t *refTable) project(p []byte, off int64) {
	end := off + int64(len(p))
	// First region that ends after off.
	lo, hi := 0, len(t.regions)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if t.regions[mid].end <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for _, r := range t.regions[lo:] {
		if r.start >= end {
			break
		}
		m := t.maps[r.m]
		a := max(r.start, off) // both multiples of 4
		if r.kind == refThumb {
			projectThumb(p, off, max(r.start, off), min(r.end, end), r, m)
			continue
		}
		if r.kind == refData64 {
			a += (a - r.start) & 4 // the region's 8-byte grid
			for ; a+8 <= min(r.end, end); a += 8 {
				q := p[a-off : a-off+8]
				if w := binary.LittleEndian.Uint64(q); w >= uint64(r.lo) && w < uint64(r.hi) {
					binary.LittleEndian.PutUint64(q, uint64(m.project(uint32(w))))
				}
			}
			continue
		}
		for ; a+4 <= min(r.end, end); a += 4 {
			q := p[a-off : a-off+4]
			w := binary.LittleEndian.Uint32(q)
			site := r.vaddr + uint32(a-r.start)
			switch {
			case r.kind == refCode && isBranch(w):
				target := site + 8 + uint32(int32(w<<8)>>6)
				rel := m.project(target) - m.project(site) - 8
				w = w&0xFF000000 | rel>>2&0xFFFFFF
			case r.kind == refCode && w >= r.lo && w < r.hi:
				w = m.project(w)
			case r.kind == refData && w >= r.lo && w < r.hi:
				w = m.project(w)
			case r.kind == refCodeA64 && w&0x7C000000 == 0x14000000: // B, BL
				target := site + uint32(int32(w<<6)>>4)
				rel := m.project(target) - m.project(site)
				w = w&0xFC000000 | rel>>2&0x03FFFFFF
			case r.kind == refCodeA64 && w&0x9F000000 == 0x90000000: // ADRP
				imm := uint32(int32((w>>5&0x7FFFF)<<2|w>>29&3) << 11 >> 11)
				page := site&^0xFFF + imm<<12
				rel := uint32(int32(m.project(page)&^0xFFF-m.project(site)&^0xFFF) >> 12)
				w = w&0x9F00001F | (rel&3)<<29 | (rel>>2&0x7FFFF)<<5
			default:
				continue
			}
			binary.LittleEndian.PutUint32(q, w)
		}
	}
}

// isThumbPair reports whether halfwords h1, h2 are a Thumb-2 BL, BLX or
// B.W (encoding T4) whose second halfword cannot start one itself
// (11110 in its top bits: J1 = 1, J2 = 0 of a BL or B.W): so pairs never
// overlap, and whether a halfword starts one depends on its own four
// bytes only, wherever a read of the image starts.
func isThumbPair(h1, h2 uint16) bool {
	return h1&0xF800 == 0xF000 && (h2&0xD000 == 0xD000 || h2&0xD000 == 0xC000 || h2&0xD000 == 0x9000) && h2&0xF800 != 0xF000
}

// projectThumb projects the Thumb-2 branch pairs of p (old image bytes
// from off) that lie wholly in [a, e) of region r, and the aligned words
// in the address range that no pair touches (literal pools). Whether a
// halfword starts a pair depends on its own 4 bytes, whether a word is a
// literal on the bytes from 2 before it to 6 after it (readers give 4
// bytes of context on each side); both are decided on the original
// bytes: a rewrite is applied only once nothing left to decide reads it.
func projectThumb(p []byte, off, a, e int64, r refRegion, m refMap) {
	pairAt := func(x int64) bool {
		return x >= r.start && x >= off && x+4 <= r.end && x+4 <= off+int64(len(p)) &&
			isThumbPair(binary.LittleEndian.Uint16(p[x-off:]), binary.LittleEndian.Uint16(p[x-off+2:]))
	}
	type write struct {
		at int64
		w  uint32
	}
	var pend [8]write // in position order
	np := 0
	apply := func(upTo int64) {
		k := 0
		for k < np && pend[k].at <= upTo {
			binary.LittleEndian.PutUint32(p[pend[k].at-off:], pend[k].w)
			k++
		}
		np = copy(pend[:], pend[k:np])
	}
	a += (a - r.start) & 1
	for ; a+2 <= e; a += 2 {
		apply(a - 6)
		if (a-r.start)&3 == 0 && a+4 <= e && !pairAt(a-2) && !pairAt(a) && !pairAt(a+2) {
			if w := binary.LittleEndian.Uint32(p[a-off:]); w >= r.lo && w < r.hi {
				pend[np] = write{a, m.project(w)}
				np++
			}
			continue
		}
		if a+4 > e || !pairAt(a) {
			continue
		}
		h1, h2 := binary.LittleEndian.Uint16(p[a-off:]), binary.LittleEndian.Uint16(p[a-off+2:])
		s := uint32(h1>>10) & 1
		i1, i2 := ^(uint32(h2>>13)^s)&1, ^(uint32(h2>>11)^s)&1
		imm := uint32(int32((s<<24|i1<<23|i2<<22|uint32(h1&0x3FF)<<12|uint32(h2&0x7FF)<<1)<<7) >> 7)
		site := r.vaddr + uint32(a-r.start)
		blx := h2&0xD000 == 0xC000
		var target, nimm uint32
		if blx {
			target = (site+4)&^3 + imm
			nimm = m.project(target) - (m.project(site)+4)&^3
		} else {
			target = site + 4 + imm
			nimm = m.project(target) - m.project(site) - 4
		}
		s = nimm >> 24 & 1
		j1, j2 := ^(nimm>>23&1)&1^s, ^(nimm>>22&1)&1^s
		n1 := h1&0xF800 | uint16(s)<<10 | uint16(nimm>>12&0x3FF)
		n2 := h2&0xD000 | uint16(j1)<<13 | uint16(j2)<<11 | uint16(nimm>>1&0x7FF)
		if blx {
			n2 &^= 1
		}
		pend[np] = write{a, uint32(n1) | uint32(n2)<<16}
		np++
		a += 2
	}
	apply(e)
}

// marshal encodes the table (before compression):
//
//	uvarint maps; per map: uvarint spans, per span: uvarint gap from the
//	end of the previous span, uvarint length, zigzag varint change of
//	(new - old) from the previous span;
//	uvarint regions; per region: uvarint gap from the previous region's
//	end, uvarint length, uvarint address, byte kind, uvarint lo, uvarint
//	hi - lo, uvarint map index.
func (t *refTable) marshal() []byte {
	b := binary.AppendUvarint(nil, uint64(len(t.maps)))
	for _, m := range t.maps {
		b = binary.AppendUvarint(b, uint64(len(m)))
		var end uint32
		var delta int64
		for _, s := range m {
			d := int64(s.new) - int64(s.old)
			b = binary.AppendUvarint(b, uint64(s.old-end))
			b = binary.AppendUvarint(b, uint64(s.n))
			b = binary.AppendVarint(b, d-delta)
			end, delta = s.old+s.n, d
		}
	}
	b = binary.AppendUvarint(b, uint64(len(t.regions)))
	var end int64
	for _, r := range t.regions {
		b = binary.AppendUvarint(b, uint64(r.start-end))
		b = binary.AppendUvarint(b, uint64(r.end-r.start))
		b = binary.AppendUvarint(b, uint64(r.vaddr))
		b = append(b, byte(r.kind))
		b = binary.AppendUvarint(b, uint64(r.lo))
		b = binary.AppendUvarint(b, uint64(r.hi-r.lo))
		b = binary.AppendUvarint(b, uint64(r.m))
		end = r.end
	}
	return b
}

// parseRefTable decodes a table from r and checks it against the old
// image's size: spans disjoint and sorted within 32 bits, regions sorted,
// disjoint, word-aligned and inside the old image, every count within
// the limits. It reads to the end of r.
func parseRefTable(r io.ByteReader, oldSize int64) (*refTable, error) {
	u := func(limit uint64) (uint64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, errors.New("short reference table")
		}
		if v > limit {
			return 0, fmt.Errorf("value %d out of range", v)
		}
		return v, nil
	}
	t := &refTable{}
	nm, err := u(maxRefMaps)
	if err != nil {
		return nil, err
	}
	spans := 0
	for range nm {
		ns, err := u(maxRefSpans)
		if err != nil {
			return nil, err
		}
		if spans += int(ns); spans > maxRefSpans {
			return nil, errors.New("too many spans")
		}
		m := make(refMap, 0, ns)
		var end, delta int64
		for range ns {
			gap, err := u(1 << 32)
			if err != nil {
				return nil, err
			}
			n, err := u(1 << 32)
			if err != nil {
				return nil, err
			}
			dd, err := binary.ReadVarint(r)
			if err != nil {
				return nil, errors.New("short reference table")
			}
			old := end + int64(gap)
			if n == 0 || old+int64(n) > 1<<32 || dd < -(1<<33) || dd > 1<<33 {
				return nil, errors.New("span out of range")
			}
			delta += dd
			nw := old + delta
			if nw < 0 || nw+int64(n) > 1<<32 {
				return nil, errors.New("span out of range")
			}
			m = append(m, refSpan{old: uint32(old), n: uint32(n), new: uint32(nw)})
			end = old + int64(n)
		}
		t.maps = append(t.maps, m)
	}
	nr, err := u(maxRefRegions)
	if err != nil {
		return nil, err
	}
	t.regions = make([]refRegion, 0, nr)
	var end int64
	for range nr {
		var v [7]uint64
		for i := range v {
			if i == 3 {
				k, err := r.ReadByte()
				if err != nil {
					return nil, errors.New("short reference table")
				}
				v[i] = uint64(k)
				continue
			}
			if v[i], err = u(1 << 48); err != nil {
				return nil, err
			}
		}
		reg := refRegion{start: end + int64(v[0]), kind: refKind(v[3]), m: int(v[6])}
		reg.end = reg.start + int64(v[1])
		switch {
		case v[1] == 0 || reg.start%4 != 0 || reg.end > oldSize:
			return nil, errors.New("region out of range")
		case v[2] >= 1<<32 || v[4] >= 1<<32 || v[4]+v[5] >= 1<<32:
			return nil, errors.New("region address out of range")
		case reg.kind >= refKinds:
			return nil, fmt.Errorf("unknown region kind %d", v[3])
		case v[6] >= uint64(len(t.maps)):
			return nil, errors.New("region names no map")
		}
		reg.vaddr, reg.lo = uint32(v[2]), uint32(v[4])
		reg.hi = uint32(v[4] + v[5])
		t.regions = append(t.regions, reg)
		end = reg.end
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, errors.New("data after the reference table")
	}
	return t, nil
}

// decodeRefTable decodes a compressed reference table (LZMA2, at most
// maxRefTable bytes decompressed).
func decodeRefTable(z []byte, oldSize int64) (*refTable, error) {
	lr, err := lzma.Reader2Config{DictCap: lzmaDictCap}.NewReader2(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return parseRefTable(bufio.NewReader(io.LimitReader(lr, maxRefTable)), oldSize)
}

// readRefs reads the reference table of a version-3 patch from r, which
// is just past the header, into h, and returns the bytes it read.
func readRefs(r io.Reader, h *nodeHeader, hop int) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, &CorruptError{Hop: hop, Offset: nodeHeaderSize, Reason: "patch ends before the reference table"}
	}
	zlen := int64(binary.LittleEndian.Uint32(lb[:]))
	if zlen > maxRefTable {
		return nil, &CorruptError{Hop: hop, Offset: nodeHeaderSize, Reason: fmt.Sprintf("reference table of %d bytes exceeds %d", zlen, maxRefTable)}
	}
	z := make([]byte, 4+zlen)
	copy(z, lb[:])
	if _, err := io.ReadFull(r, z[4:]); err != nil {
		return nil, &CorruptError{Hop: hop, Offset: nodeHeaderSize, Reason: "patch ends in the reference table"}
	}
	t, err := decodeRefTable(z[4:], h.oldSize)
	if err != nil {
		return nil, &CorruptError{Hop: hop, Offset: nodeHeaderSize + 4, Reason: "reference table: " + err.Error()}
	}
	h.refs, h.dataOff = t, nodeHeaderSize+4+zlen
	return z, nil
}
