package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"

	"github.com/ulikunitz/xz/lzma"
)

// segment is a run of new bytes: from old (plus diff) when old >= 0, else
// from the extra stream.
type segment struct{ newPos, n, old int64 }

func segments(cs []ctrl) []segment {
	var out []segment
	var np, op int64
	for _, c := range cs {
		if c.add > 0 {
			out = append(out, segment{np, c.add, op})
		}
		if c.copy > 0 {
			out = append(out, segment{np + c.add, c.copy, -1})
		}
		np += c.add + c.copy
		op += c.add + c.seek
	}
	return out
}

// frameEntries turns the segments of one frame into control entries. Add
// segments shorter than minAdd become extra bytes.
func frameEntries(segs []segment, minAdd int64) (ents []ctrl, adds []segment, extras []segment) {
	var cur *ctrl
	curOldEnd := int64(-1) // old position after the last add; -1 before the first
	for _, s := range segs {
		if s.old >= 0 && s.n < minAdd {
			s.old = -1
		}
		if s.old >= 0 {
			if cur != nil && curOldEnd >= 0 {
				// Seek from the end of the previous add to this one; the
				// frame starts at the first add's old position.
				cur.seek = s.old - curOldEnd
			}
			ents = append(ents, ctrl{add: s.n})
			cur = &ents[len(ents)-1]
			curOldEnd = s.old + s.n
			adds = append(adds, s)
			continue
		}
		if cur == nil {
			ents = append(ents, ctrl{})
			cur = &ents[len(ents)-1]
		}
		cur.copy += s.n
		extras = append(extras, s)
	}
	return ents, adds, extras
}

// domain is one way to encode the images: as they are, or with the ARM
// branch transform applied to both. oldT and newT are the images in that
// domain and segs the bsdiff script found there.
type domain struct {
	x          xform
	oldT, newT []byte
	segs       []segment
	si         int // first segment not wholly before the frame being encoded
}

// encodedFrame is one frame's two compressed sections and its flags.
type encodedFrame struct {
	zd, zr     []byte
	x          xform
	rawD, rawR bool // section stored uncompressed (version 2)
	lzmaD      bool // diff section LZMA2-compressed, not bzip2 (version 2)
}

func (e *encodedFrame) size() int { return len(e.zd) + len(e.zr) }

// Frame flags of version 2, in the top bits of the section lengths.
const (
	frameARM      = 1 << 31 // in the diff length: the frame is coded through the ARM transform
	frameRawDiff  = 1 << 30 // in the diff length: zero-run coded diff bytes, not bzip2
	frameRawRest  = 1 << 31 // in the rest length: control and extra bytes, not LZMA2
	frameThumb    = 1 << 30 // in the rest length: the frame is coded through the Thumb-2 transform
	frameLZMADiff = 1 << 29 // in the diff length: zero-run coded diff bytes, LZMA2, not bzip2
	frameRef      = 1 << 29 // in the rest length (version 3): the frame is coded through reference correction
	frameLenMaskD = frameLZMADiff - 1
	frameLenMaskR = frameThumb - 1 // version 2
	frameLenMask3 = frameRef - 1   // version 3, rest length
)

// nodeWriter assembles a node-format patch: the header and the chained
// digests are computed from the images first, then the frames of each
// domain are encoded in turn (so that only one domain's script and images
// are needed at a time), and each frame keeps its smallest encoding.
type nodeWriter struct {
	h           *nodeHeader
	digestBlock int64
	digests     [][]byte // per frame
	best        []*encodedFrame
	plain       []*encodedFrame // best without reference correction (nil: same as best)
	domains     int             // domains added
	refs        *refTable       // reference table of the xformRef domain (version 3)
}

func newNodeWriter(old, new []byte, version byte, frameSize, digestBlock int64) (*nodeWriter, error) {
	h := &nodeHeader{version: version, frameSize: frameSize, oldSize: int64(len(old)), newSize: int64(len(new))}
	for h.digestLog = minDigestLog; h.digestBlock() < digestBlock; h.digestLog++ {
	}
	if h.digestBlock() != digestBlock || digestBlock > 1<<maxDigestLog || frameSize%digestBlock != 0 || frameSize > maxFrameSize {
		return nil, fmt.Errorf("delta: frame size %d and digest block %d: want powers of two, digest block in [4 KiB, 1 MiB] dividing the frame size (at most 4 MiB)", frameSize, digestBlock)
	}
	h.oldSHA = sha256.Sum256(old)
	h.newSHA = sha256.Sum256(new)
	w := &nodeWriter{h: h, digestBlock: digestBlock, best: make([]*encodedFrame, h.frames())}
	chain := h.newSHA
	for f := int64(0); f < h.frames(); f++ {
		fs := f * frameSize
		fe := fs + h.frameLen(f)
		var d []byte
		for b := fs; b < fe; b += digestBlock {
			chain = chainDigest(chain, b/digestBlock, new[b:min(b+digestBlock, fe)])
			d = append(d, chain[:digestLen]...)
		}
		w.digests = append(w.digests, d)
	}
	return w, nil
}

// add encodes every frame in domain d and keeps, per frame, the smaller of
// this encoding and the best so far. Version 1 takes exactly one domain.
func (w *nodeWriter) add(d *domain) error {
	if w.h.version == nodeVersion1 {
		if w.domains > 0 {
			return fmt.Errorf("delta: node format 1 takes one transform")
		}
		switch d.x {
		case xformARM:
			w.h.flags |= flagARM
		case xformThumb:
			return fmt.Errorf("delta: node format 1 has no Thumb transform")
		}
	}
	w.domains++
	for f := range w.best {
		fs := int64(f) * w.h.frameSize
		e, err := encodeFrame(d, fs, fs+w.h.frameLen(int64(f)), w.h.frameSize, w.h.version)
		if err != nil {
			return err
		}
		if d.x == xformRef && w.plain == nil {
			w.plain = slices.Clone(w.best)
		}
		if w.best[f] == nil || e.size() < w.best[f].size() {
			w.best[f] = e
		}
		if d.x != xformRef && w.plain != nil && e.size() < w.plain[f].size() {
			w.plain[f] = e
		}
	}
	return nil
}

// addRefs tries reference correction: the table from the plain script's
// segments, then a pass between the projected old image and new. With
// inPlace, old is projected in place and put back from an undo list of
// the words that changed (8 bytes per changed word instead of a copy of
// the image).
func (w *nodeWriter) addRefs(old, new []byte, segs []segment, inPlace bool) error {
	t := buildRefTable(old, new, segs)
	if t == nil {
		return nil
	}
	w.refs = t
	if !inPlace {
		p := slices.Clone(old)
		t.project(p, 0)
		runtime.GC() // the plain pass's suffix array is garbage
		return w.add(&domain{x: xformRef, oldT: p, newT: new, segs: refSegments(p, new, segs, t)})
	}
	type undo struct{ off, word uint32 }
	var saved []undo
	// Pieces with 4 bytes of context on each side (a Thumb-2 pair may
	// straddle two), projected from the original bytes.
	const piece = 64 << 10
	buf := make([]byte, piece+8)
	var prev []byte // the last piece's projected bytes, written back late
	var prevOff int64
	flush := func() {
		for i := 0; i+4 <= len(prev); i += 4 {
			at := prevOff + int64(i)
			if o := binary.LittleEndian.Uint32(old[at:]); o != binary.LittleEndian.Uint32(prev[i:]) {
				saved = append(saved, undo{uint32(at), o})
			}
		}
		copy(old[prevOff:], prev)
	}
	out := make([]byte, piece)
	for _, r := range t.regions {
		for off := r.start &^ 3; off < r.end; off += piece {
			lo, hi := max(off-4, 0), min(off+piece+4, (r.end+3)&^3+4, int64(len(old)))
			q := buf[:hi-lo]
			copy(q, old[lo:hi])
			t.project(q, lo)
			if prev != nil {
				flush()
			}
			n := min(piece, (r.end+3)&^3-off, int64(len(old))-off)
			prev, prevOff = out[:n], off
			copy(prev, q[off-lo:])
		}
	}
	if prev != nil {
		flush()
	}
	defer func() {
		for _, u := range saved {
			binary.LittleEndian.PutUint32(old[u.off:], u.word)
		}
	}()
	runtime.GC()
	return w.add(&domain{x: xformRef, oldT: old, newT: new, segs: refSegments(old, new, segs, t)})
}

// refSegments is the projected pass's script between the projected old
// image and new. Projection changes old only inside the table's regions,
// so only new bytes whose plain matches fell in the window those regions
// span can gain from a search in the projected image: when that window is
// small against the image (an ~80 MB image where the programs take 10 MB),
// the suffix array is built over the window alone and only the new bytes
// that matched into it are searched again; elsewhere the plain script
// stands. Any script is a valid one (the diff bytes are taken against the
// projected image), so this changes sizes, never correctness; each frame
// still keeps its smaller encoding. When the window is most of the image
// the whole images are searched, as before.
func refSegments(old, new []byte, plain []segment, t *refTable) []segment {
	if len(t.regions) == 0 {
		return scriptSegments(old, new)
	}
	wlo := max(t.regions[0].start, 0)
	whi := min(t.regions[len(t.regions)-1].end, int64(len(old)))
	for _, r := range t.regions {
		whi = max(whi, min(r.end, int64(len(old))))
	}
	if whi <= wlo || (whi-wlo)*4 > int64(len(old))*3 {
		return scriptSegments(old, new)
	}
	nlo, nhi := int64(-1), int64(-1)
	for _, s := range plain {
		if s.old >= 0 && s.old < whi && s.old+s.n > wlo {
			if nlo < 0 {
				nlo = s.newPos
			}
			nhi = s.newPos + s.n
		}
	}
	if nlo < 0 {
		return plain
	}
	inner := scriptSegments(old[wlo:whi], new[nlo:nhi])
	for i := range inner {
		inner[i].newPos += nlo
		if inner[i].old >= 0 {
			inner[i].old += wlo
		}
	}
	out := cutSegments(plain, 0, nlo)
	out = append(out, inner...)
	return append(out, cutSegments(plain, nhi, int64(len(new)))...)
}

// cutSegments returns the parts of segs (which tile new in order) that
// cover new positions [lo, hi).
func cutSegments(segs []segment, lo, hi int64) []segment {
	var out []segment
	for _, s := range segs {
		a, b := max(s.newPos, lo), min(s.newPos+s.n, hi)
		if a >= b {
			continue
		}
		c := segment{newPos: a, n: b - a, old: -1}
		if s.old >= 0 {
			c.old = s.old + (a - s.newPos)
		}
		out = append(out, c)
	}
	return out
}

// bytes returns the patch: version 3, with the reference table after the
// header, when frames coded through reference correction save more than
// the table costs, else the version the writer was made for.
func (w *nodeWriter) bytes() ([]byte, error) {
	h := w.h
	var table []byte
	if w.plain != nil {
		z, err := lzmaCompress(w.refs.marshal())
		if err != nil {
			return nil, err
		}
		total := func(es []*encodedFrame) (n int) {
			for _, e := range es {
				n += e.size()
			}
			return n
		}
		if len(z) <= maxRefTable && total(w.best)+4+len(z) < total(w.plain) {
			h.version, h.flags = nodeVersion3, flagRefs
			table = binary.LittleEndian.AppendUint32(nil, uint32(len(z)))
			table = append(table, z...)
		} else {
			w.best = w.plain
		}
	}
	h.marshal()
	out := append([]byte(nil), h.raw[:]...)
	out = append(out, table...)
	for f, best := range w.best {
		zd, zr := uint32(len(best.zd)), uint32(len(best.zr))
		if best.x == xformARM && h.version >= nodeVersion2 {
			zd |= frameARM
		}
		if best.x == xformThumb {
			zr |= frameThumb
		}
		if best.x == xformRef {
			zr |= frameRef
		}
		if best.rawD {
			zd |= frameRawDiff
		}
		if best.lzmaD {
			zd |= frameLZMADiff
		}
		if best.rawR {
			zr |= frameRawRest
		}
		out = binary.LittleEndian.AppendUint32(out, zd)
		out = binary.LittleEndian.AppendUint32(out, zr)
		out = append(out, w.digests[f]...)
		out = append(out, best.zd...)
		out = append(out, best.zr...)
	}
	return out, nil
}

// encodeFrame encodes output [fs, fe) with the script of domain d.
func encodeFrame(d *domain, fs, fe, frameSize int64, version byte) (*encodedFrame, error) {
	// Clip the segments to [fs, fe).
	var fsegs []segment
	for i := d.si; i < len(d.segs) && d.segs[i].newPos < fe; i++ {
		s := d.segs[i]
		lo, hi := max(s.newPos, fs), min(s.newPos+s.n, fe)
		c := segment{lo, hi - lo, -1}
		if s.old >= 0 {
			c.old = s.old + lo - s.newPos
		}
		fsegs = append(fsegs, c)
		if s.newPos+s.n <= fe {
			d.si = i + 1
		}
	}
	minAdd := int64(1)
	ents, adds, extras := frameEntries(fsegs, minAdd)
	for int64(len(ents)) > maxCtrl(frameSize) {
		minAdd *= 2
		ents, adds, extras = frameEntries(fsegs, minAdd)
	}
	oldPos := int64(0)
	if len(adds) > 0 {
		oldPos = adds[0].old
	}
	var diff []byte
	for _, s := range adds {
		nt, ot := d.newT[s.newPos:s.newPos+s.n], d.oldT[s.old:s.old+s.n]
		for i := range nt {
			diff = append(diff, nt[i]-ot[i])
		}
	}
	payload := binary.AppendUvarint(nil, uint64(oldPos))
	payload = binary.AppendUvarint(payload, uint64(len(ents)))
	for _, e := range ents {
		payload = binary.AppendUvarint(payload, uint64(e.add))
		payload = binary.AppendUvarint(payload, uint64(e.copy))
		payload = binary.AppendVarint(payload, e.seek)
	}
	for _, s := range extras {
		payload = append(payload, d.newT[s.newPos:s.newPos+s.n]...)
	}
	e := &encodedFrame{x: d.x}
	var err error
	if len(diff) > 0 {
		zr := zeroRuns(diff)
		if e.zd, err = bzip2Compress(zr); err != nil {
			return nil, err
		}
		if version >= nodeVersion2 {
			// bzip2 wins on most frames; LZMA2 on some (on the system
			// images, keeping the smaller saves 7 % of the diff bytes).
			lz, err := lzmaCompress(zr)
			if err != nil {
				return nil, err
			}
			if len(lz) < len(e.zd) {
				e.zd, e.lzmaD = lz, true
			}
			if len(zr) <= len(e.zd) {
				e.zd, e.rawD, e.lzmaD = zr, true, false
			}
		}
	}
	if e.zr, err = lzmaCompress(payload); err != nil {
		return nil, err
	}
	if version >= nodeVersion2 && len(payload) <= len(e.zr) {
		e.zr, e.rawR = payload, true
	}
	return e, nil
}

// zeroRuns encodes diff bytes, mostly zero, as a sequence of (uvarint
// count of zeros, uvarint count of literals, the literals). It shrinks
// the stream about 12 times before bzip2, which makes decoding that much
// faster, for about 3 % more compressed bytes.
func zeroRuns(d []byte) []byte {
	var out []byte
	for i := 0; i < len(d); {
		j := i
		for j < len(d) && d[j] == 0 {
			j++
		}
		k := j
		for k < len(d) && d[k] != 0 {
			k++
		}
		out = binary.AppendUvarint(out, uint64(j-i))
		out = binary.AppendUvarint(out, uint64(k-j))
		out = append(out, d[j:k]...)
		i = k
	}
	return out
}

func lzmaCompress(p []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := lzma.Writer2Config{DictCap: lzmaDictCap, Properties: &lzma.Properties{LC: 3, LP: 0, PB: 0}}.NewWriter2(&buf)
	if err != nil {
		return nil, fmt.Errorf("delta: lzma writer: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return nil, fmt.Errorf("delta: lzma: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("delta: lzma: %w", err)
	}
	return buf.Bytes(), nil
}
