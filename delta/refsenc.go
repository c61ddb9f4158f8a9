package delta

import (
	"bytes"
	"slices"
	"sort"
)

// The encoder's side of reference correction: the regions of the old
// image that hold references, and the equivalence map of each old ELF
// file to its counterpart in the new image.

// refMinSpan is the shortest match of the plain bsdiff script that goes
// into an equivalence map: shorter ones are as often chance as moves.
// (On the tar r1→r2 pair: 16 bytes 1083677, 32 1079808, 64 1079463,
// 128 1084445 bytes of patch.)
const refMinSpan = 64

// buildRefTable returns the reference table for old → new, from the
// segments of the plain bsdiff script between them, or nil when there is
// nothing to correct (no ARM ELF file in both).
func buildRefTable(old, new []byte, segs []segment) *refTable {
	olds, news := findELFs(old), findELFs(new)
	if len(olds) == 0 || len(news) == 0 {
		return nil
	}
	// Pair each old ELF file with the new one most of its matched bytes
	// went to.
	votes := make([]map[int]int64, len(olds))
	for _, s := range segs {
		if s.old < 0 || s.n < refMinSpan {
			continue
		}
		i, j := elfAt(olds, s.old), elfAt(news, s.newPos)
		if i < 0 || j < 0 {
			continue
		}
		if votes[i] == nil {
			votes[i] = map[int]int64{}
		}
		votes[i][j] += s.n
	}
	pair := make([]int, len(olds))
	for i := range pair {
		pair[i] = -1
		var best int64
		for j, v := range votes[i] {
			if v > best || v == best && j < pair[i] {
				pair[i], best = j, v
			}
		}
	}
	maps := make([]refMap, len(olds))
	for _, s := range segs {
		if s.old < 0 || s.n < refMinSpan {
			continue
		}
		i := elfAt(olds, s.old)
		if i < 0 || pair[i] < 0 {
			continue
		}
		of, nf := &olds[i], &news[pair[i]]
		// Cut the match at the section boundaries of both files.
		for k := int64(0); k < s.n; {
			so, sn := of.section(s.old+k), nf.section(s.newPos+k)
			if so == nil || sn == nil {
				k++
				continue
			}
			n := min(s.n-k, so.off+so.size-(s.old+k), sn.off+sn.size-(s.newPos+k))
			if n >= refMinSpan {
				maps[i] = append(maps[i], refSpan{
					old: so.vaddr + uint32(s.old+k-so.off),
					n:   uint32(n),
					new: sn.vaddr + uint32(s.newPos+k-sn.off),
				})
			}
			k += n
		}
	}
	t := &refTable{}
	for i := range olds {
		if pair[i] < 0 {
			continue
		}
		of, nf := &olds[i], &news[pair[i]]
		// Sections only in memory (.bss) move with their names.
		for _, so := range of.sections {
			if so.size > 0 {
				continue
			}
			for _, sn := range nf.sections {
				if sn.size == 0 && sn.name == so.name {
					maps[i] = append(maps[i], refSpan{old: so.vaddr, n: min(so.vsize, sn.vsize), new: sn.vaddr})
				}
			}
		}
		m := normalizeMap(maps[i])
		if len(m) == 0 {
			continue
		}
		mi := len(t.maps)
		t.maps = append(t.maps, m)
		for _, so := range of.sections {
			if so.size == 0 {
				continue
			}
			kind, code, align := refData, refCode, int64(4)
			if of.a64 {
				kind, code, align = refData64, refCodeA64, 8
			}
			switch {
			case so.flags&shfExec != 0:
				kind, align = code, 4
				if a32, thumb := blCounts(old[so.off : so.off+so.size]); !of.a64 && thumb > a32 {
					kind = refThumb
				}
			case so.typ == shtProgbits, so.typ == shtRel, so.typ == shtDynsym, so.typ == shtDynamic,
				so.typ == shtInitArray, so.typ == shtFiniArray, of.a64 && so.typ == shtRela:
			default:
				continue
			}
			start, end := (so.off+align-1)&^(align-1), so.off+so.size
			if end-start < 4 || len(t.regions) > 0 && start < t.regions[len(t.regions)-1].end {
				continue
			}
			t.regions = append(t.regions, refRegion{
				start: start, end: end, vaddr: so.vaddr + uint32(start-so.off),
				kind: kind, lo: max(of.lo, 1<<12), hi: of.hi, m: mi,
			})
		}
	}
	t.regions = keepPayingChunks(old, new, t, segs)
	if len(t.regions) == 0 || len(t.regions) > maxRefRegions || len(t.maps) > maxRefMaps {
		return nil
	}
	spans := 0
	for _, m := range t.maps {
		spans += len(m)
	}
	if spans > maxRefSpans {
		return nil
	}
	return t
}

// elfAt returns the index of the ELF file holding image offset off, or -1.
func elfAt(fs []elfFile, off int64) int {
	i := sort.Search(len(fs), func(i int) bool { return fs[i].end > off })
	if i < len(fs) && fs[i].base <= off {
		return i
	}
	return -1
}

// normalizeMap sorts spans by old address, cuts overlaps (the longer span
// keeps the contested addresses... the earlier one, simply) and merges
// neighbours that move by the same amount.
func normalizeMap(m refMap) refMap {
	slices.SortFunc(m, func(a, b refSpan) int {
		if a.old != b.old {
			return cmpU32(a.old, b.old)
		}
		return cmpU32(b.n, a.n)
	})
	var out refMap
	for _, s := range m {
		if len(out) > 0 {
			p := &out[len(out)-1]
			pend := uint64(p.old) + uint64(p.n)
			if uint64(s.old) < pend {
				cut := pend - uint64(s.old)
				if cut >= uint64(s.n) {
					continue
				}
				s.old += uint32(cut)
				s.new += uint32(cut)
				s.n -= uint32(cut)
			}
			if uint64(s.old) == pend && s.new-s.old == p.new-p.old {
				p.n += s.n
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// refChunk is the unit in which the encoder decides where projecting
// references pays.
const refChunk = 4096 // (1 KiB: 1058300 bytes on tar r1→r2, 4 KiB 1058598, 16 KiB 1057996)

// keepPayingChunks returns the parts of t's regions, in chunks of
// refChunk image bytes, where projecting makes no fewer old words equal
// to the new words they were matched with (by the plain script) than
// before: data that only looks like pointers (integer tables in
// read-only data, say) is left alone. (Keeping only chunks that gain
// lost: 1172114 bytes on tar r1→r2 against 1079463 without the filter;
// dropping those that lose gives 1058598.)
func keepPayingChunks(old, new []byte, t *refTable, segs []segment) []refRegion {
	type span struct{ old, n, new int64 }
	var spans []span
	for _, s := range segs {
		if s.old >= 0 && s.n >= refMinSpan {
			spans = append(spans, span{s.old, s.n, s.newPos})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.old - b.old) })
	buf := make([]byte, refChunk)
	var out []refRegion
	for _, r := range t.regions {
		for c := r.start; c < r.end; {
			ce := min((c/refChunk+1)*refChunk, r.end)
			p := buf[:ce-c]
			copy(p, old[c:ce])
			t.project(p, c)
			gain := 0
			i := sort.Search(len(spans), func(i int) bool { return spans[i].old+spans[i].n > c })
			for a := c; a+4 <= ce; a += 4 {
				for i < len(spans) && spans[i].old+spans[i].n < a+4 {
					i++
				}
				if i == len(spans) || spans[i].old > a {
					continue
				}
				q := a - spans[i].old + spans[i].new
				if q+4 > int64(len(new)) {
					continue
				}
				nw := new[q : q+4]
				if bytes.Equal(p[a-c:a-c+4], nw) {
					gain++
				}
				if bytes.Equal(old[a:a+4], nw) {
					gain--
				}
			}
			if gain >= 0 {
				if n := len(out); n > 0 && out[n-1].end == c && out[n-1].m == r.m && out[n-1].kind == r.kind && out[n-1].vaddr+uint32(c-out[n-1].start) == r.vaddr+uint32(c-r.start) {
					out[n-1].end = ce
				} else {
					k := r
					k.start, k.end, k.vaddr = c, ce, r.vaddr+uint32(c-r.start)
					out = append(out, k)
				}
			}
			c = ce
		}
	}
	return out
}
