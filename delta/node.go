package delta

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/ulikunitz/xz/lzma"
)

const (
	nodeMagic = "MTRDLT01"
	// nodeVersion1 carries the transform in the header, for the whole
	// patch; nodeVersion2 (the default) carries it, and the choice of
	// compression, per frame, in the top bits of the two section lengths.
	nodeVersion1   = 1
	nodeVersion2   = 2
	nodeVersion3   = 3 // version 2 and a reference table (refs.go)
	nodeHeaderSize = 100
	flagARM        = 1 << 0
	flagRefs       = 1 << 1 // version 3: the reference table follows the header
	// codecBzip2LZMA: per frame, the diff bytes, zero-run encoded, as one
	// bzip2 stream, and the control entries plus extra bytes as one LZMA2
	// stream with a 256 KiB dictionary (see the measurements in doc.go).
	codecBzip2LZMA = 2
	lzmaDictCap    = 256 << 10
	digestLen      = 16 // stored bytes of each chained block digest

	// Limits the decoder enforces, whatever a header says.
	minDigestLog = 12      // 4 KiB
	maxDigestLog = 20      // 1 MiB
	maxFrameSize = 4 << 20 // output bytes per frame

	// DefaultFrameSize is the output covered by one independently
	// compressed frame of a node-format patch.
	DefaultFrameSize = 1 << 20
)

// nodeHeader is the fixed header of a node-format patch.
type nodeHeader struct {
	version   byte
	flags     byte
	digestLog uint8
	frameSize int64
	oldSize   int64
	newSize   int64
	oldSHA    [32]byte
	newSHA    [32]byte
	raw       [nodeHeaderSize]byte
	refs      *refTable // version 3: the reference table
	dataOff   int64     // patch offset of the first frame
}

func (h *nodeHeader) arm() bool          { return h.flags&flagARM != 0 }
func (h *nodeHeader) digestBlock() int64 { return 1 << h.digestLog }
func (h *nodeHeader) frames() int64      { return (h.newSize + h.frameSize - 1) / h.frameSize }

// frameLen is the output length of frame i.
func (h *nodeHeader) frameLen(i int64) int64 {
	return min(h.frameSize, h.newSize-i*h.frameSize)
}

// maxCtrl is the most control entries a frame may have: it bounds the
// decoder's entry table whatever the patch says.
func maxCtrl(frameSize int64) int64 { return frameSize/64 + 1 }

// maxPayload bounds a frame's decoded payload: the output bytes, the
// control entries (3 varints of at most 10 bytes) and two varints.
func maxPayload(frameSize int64) int64 { return frameSize + maxCtrl(frameSize)*30 + 20 }

func (h *nodeHeader) marshal() {
	b := h.raw[:]
	copy(b, nodeMagic)
	b[8] = h.version
	b[9] = h.flags
	b[10] = codecBzip2LZMA
	b[11] = h.digestLog
	binary.LittleEndian.PutUint32(b[12:], uint32(h.frameSize))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.oldSize))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.newSize))
	copy(b[32:], h.oldSHA[:])
	copy(b[64:], h.newSHA[:])
	binary.LittleEndian.PutUint32(b[96:], crc32.ChecksumIEEE(b[:96]))
}

// parseNodeHeader checks and decodes the 100-byte header.
func parseNodeHeader(b []byte, maxOut int64) (*nodeHeader, error) {
	h := &nodeHeader{dataOff: nodeHeaderSize}
	copy(h.raw[:], b)
	switch {
	case string(b[:8]) != nodeMagic:
		return nil, ErrUnknownFormat
	case binary.LittleEndian.Uint32(b[96:]) != crc32.ChecksumIEEE(b[:96]):
		return nil, corrupt(96, "header checksum mismatch")
	case b[8] != nodeVersion1 && b[8] != nodeVersion2 && b[8] != nodeVersion3:
		return nil, corrupt(8, "unsupported version %d", b[8])
	case b[8] == nodeVersion1 && b[9]&^flagARM != 0, b[8] == nodeVersion2 && b[9] != 0, b[8] == nodeVersion3 && b[9] != flagRefs:
		return nil, corrupt(9, "unknown flags %#x", b[9])
	case b[10] != codecBzip2LZMA:
		return nil, corrupt(10, "unknown codec %d", b[10])
	case b[11] < minDigestLog || b[11] > maxDigestLog:
		return nil, corrupt(11, "digest block 2^%d out of range", b[11])
	}
	h.version, h.flags, h.digestLog = b[8], b[9], b[11]
	h.frameSize = int64(binary.LittleEndian.Uint32(b[12:]))
	if h.frameSize < h.digestBlock() || h.frameSize > maxFrameSize || h.frameSize%h.digestBlock() != 0 {
		return nil, corrupt(12, "frame size %d out of range", h.frameSize)
	}
	old, nw := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
	if old > 1<<48 {
		return nil, corrupt(16, "old size %d out of range", old)
	}
	if nw > 1<<48 {
		return nil, corrupt(24, "new size %d out of range", nw)
	}
	h.oldSize, h.newSize = int64(old), int64(nw)
	if h.newSize > maxOut {
		return nil, fmt.Errorf("%w: patch declares %d bytes, cap %d", ErrTooLarge, h.newSize, maxOut)
	}
	copy(h.oldSHA[:], b[32:64])
	copy(h.newSHA[:], b[64:96])
	return h, nil
}

// chainDigest is the chained digest of output block i:
// SHA-256(previous chained digest || block index || block bytes). The
// chain starts from the declared digest of the whole new image.
func chainDigest(prev [32]byte, i int64, block []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	var ib [8]byte
	binary.LittleEndian.PutUint64(ib[:], uint64(i))
	h.Write(ib[:])
	h.Write(block)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// entry is a decoded control entry with its offsets: out in the frame's
// output, old in the source, diff in the frame's diff bytes, extra in its
// extra bytes.
type entry struct{ out, add, cp, old, diff, extra int64 }

// zrMark locates a run of the zero-run coded diff bytes: its diff offset
// and its offset in the coded stream.
type zrMark struct{ diff, at uint32 }

// zrMarkEvery is the number of runs between two marks.
const zrMarkEvery = 32

// decodedFrame is one frame, decompressed and checked, in compact form:
// the diff bytes, mostly zero, are kept zero-run coded (as zeroRuns
// writes them, with a mark every zrMarkEvery runs for random access) when
// that is at most half their size (on the corpus it is about a tenth), so
// that an inner chain hop keeps many decoded frames in little memory.
type decodedFrame struct {
	f      int64
	flen   int64
	x      xform // the transform the frame is coded through
	sparse bool  // diff bytes in zr/marks, else in dense
	ents   []entry
	dense  []byte
	zr     []byte
	marks  []zrMark
	extra  []byte
}

// mem is the memory the frame holds.
func (df *decodedFrame) mem() int64 {
	return int64(cap(df.ents))*48 + int64(cap(df.marks))*8 + int64(cap(df.zr)+cap(df.dense)+cap(df.extra)) + 128
}

// resize returns b with length n, reusing it unless it is much larger.
func resize[T any](b []T, n int) []T {
	if cap(b) >= n && cap(b) <= 2*n+512 {
		return b[:n]
	}
	return make([]T, n)
}

// frameDecoder decodes node-format frames of one hop.
type frameDecoder struct {
	h    *nodeHeader
	hop  int
	src  view          // the hop's source
	xsrc [xforms]view  // the same through each transform (nil: none in this patch)
	br   *bufio.Reader // rest section
	dbr  *bufio.Reader // diff section
}

func newFrameDecoder(h *nodeHeader, hop int, src view) *frameDecoder {
	d := &frameDecoder{h: h, hop: hop, src: src,
		xsrc: [xforms]view{src, &xformView{v: src, x: xformARM, encode: true}, &xformView{v: src, x: xformThumb, encode: true}, nil},
		br:   bufio.NewReaderSize(nil, 4096), dbr: bufio.NewReaderSize(nil, 4096)}
	if h.refs != nil {
		d.xsrc[xformRef] = &xformView{v: src, x: xformRef, refs: h.refs}
	}
	return d
}

// maxCompressedFrame bounds each compressed section of a frame.
func maxCompressedFrame(frameSize int64) int64 {
	return maxPayload(frameSize) + maxPayload(frameSize)/4 + 4096
}

// frameLoc locates a frame's compressed sections in the patch.
type frameLoc struct {
	off        int64 // patch offset of the frame header
	data       int64 // patch offset of the diff section; the rest follows
	zd, zr     int64 // compressed lengths of the two sections
	x          xform // the transform the frame is coded through
	rawD, rawR bool  // section stored without compression
	lzmaD      bool  // diff section in LZMA2, not bzip2
}

// decode decodes frame f into df from its compressed diff section zd and
// control and extra section zr, and checks every value against the frame
// and the source. It never reads more decompressed bytes than the frame
// can hold.
func (d *frameDecoder) decode(df *decodedFrame, zd, zr []byte, f int64, loc frameLoc) error {
	df.f = -1
	bad := func(off int64, format string, args ...any) error {
		return &CorruptError{Hop: d.hop, Offset: off, Reason: fmt.Sprintf("frame %d: ", f) + fmt.Sprintf(format, args...)}
	}
	restOff := loc.data + loc.zd
	if loc.rawR {
		d.br.Reset(bytes.NewReader(zr))
	} else {
		lr, err := lzma.Reader2Config{DictCap: lzmaDictCap}.NewReader2(bytes.NewReader(zr))
		if err != nil {
			return bad(restOff, "%v", err)
		}
		d.br.Reset(lr)
	}
	defer d.br.Reset(nil) // let the LZMA dictionary go
	flen := d.h.frameLen(f)
	u := func() int64 {
		v, err := binary.ReadUvarint(d.br)
		if err != nil || v > 1<<48 {
			return -1
		}
		return int64(v)
	}
	oldPos, n := u(), u()
	if oldPos < 0 || oldPos > d.h.oldSize {
		return bad(restOff, "start position out of range")
	}
	if n < 0 || n > maxCtrl(d.h.frameSize) {
		return bad(restOff, "control count out of range")
	}
	df.ents = df.ents[:0]
	pos, out, nDiff := oldPos, int64(0), int64(0)
	for i := int64(0); i < n; i++ {
		add, cp := u(), u()
		seek, err := binary.ReadVarint(d.br)
		switch {
		case add < 0 || cp < 0 || err != nil:
			return bad(restOff, "control entry %d unreadable", i)
		case add+cp == 0:
			return bad(restOff, "control entry %d is empty", i)
		case add > flen-out || cp > flen-out-add:
			return bad(restOff, "control entry %d writes past the frame", i)
		case add > d.h.oldSize-pos:
			return bad(restOff, "control entry %d reads past the source", i)
		case seek < -pos-add || seek > d.h.oldSize-pos-add:
			return bad(restOff, "control entry %d seeks out of the source", i)
		}
		df.ents = append(df.ents, entry{out: out, add: add, cp: cp, old: pos, diff: nDiff})
		pos += add + seek
		out += add + cp
		nDiff += add
	}
	if out != flen {
		return bad(restOff, "control entries cover %d bytes, frame has %d", out, flen)
	}
	var extra int64
	for i := range df.ents {
		df.ents[i].extra = extra
		extra += df.ents[i].cp
	}
	df.extra = resize(df.extra, int(extra))
	if _, err := io.ReadFull(d.br, df.extra); err != nil {
		return bad(restOff, "extra bytes: %v", err)
	}
	if _, err := d.br.ReadByte(); err != io.EOF {
		return bad(restOff, "data after the extra bytes")
	}
	df.sparse, df.zr, df.marks, df.dense = true, df.zr[:0], df.marks[:0], df.dense[:0]
	switch {
	case nDiff == 0 && len(zd) != 0:
		return bad(loc.data, "diff section without diff bytes")
	case nDiff > 0:
		switch {
		case loc.rawD:
			d.dbr.Reset(bytes.NewReader(zd))
		case loc.lzmaD:
			lr, err := lzma.Reader2Config{DictCap: lzmaDictCap}.NewReader2(bytes.NewReader(zd))
			if err != nil {
				return bad(loc.data, "%v", err)
			}
			d.dbr.Reset(lr)
		default:
			d.dbr.Reset(bzip2.NewReader(bytes.NewReader(zd)))
		}
		err := df.readDiff(d.dbr, nDiff)
		d.dbr.Reset(nil)
		if err != nil {
			return bad(loc.data, "diff bytes: %v", err)
		}
	}
	df.f, df.flen, df.x = f, flen, loc.x
	return nil
}

// readDiff decodes the zero-run coded diff bytes (see zeroRuns) of a
// frame, n bytes, from r, and checks that r ends there. It keeps them
// coded while that takes at most half as many bytes, else as they are.
func (df *decodedFrame) readDiff(r *bufio.Reader, n int64) error {
	df.sparse = true
	df.zr, df.marks, df.dense = df.zr[:0], df.marks[:0], df.dense[:0]
	for pos, runs := int64(0), 0; pos < n; runs++ {
		z, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		if z > uint64(n-pos) || l > uint64(n-pos)-z || z+l == 0 {
			return errors.New("zero run out of range")
		}
		if df.sparse && int64(len(df.zr)+8*len(df.marks)+2*binary.MaxVarintLen32)+int64(l) > n/2 {
			df.toDense(n)
		}
		if !df.sparse {
			pos += int64(z)
			clear(df.dense[pos-int64(z) : pos])
			if _, err := io.ReadFull(r, df.dense[pos:pos+int64(l)]); err != nil {
				return err
			}
			pos += int64(l)
			continue
		}
		if runs%zrMarkEvery == 0 {
			df.marks = append(df.marks, zrMark{diff: uint32(pos), at: uint32(len(df.zr))})
		}
		df.zr = binary.AppendUvarint(df.zr, z)
		df.zr = binary.AppendUvarint(df.zr, l)
		at := len(df.zr)
		df.zr = append(df.zr, make([]byte, l)...)
		if _, err := io.ReadFull(r, df.zr[at:]); err != nil {
			return err
		}
		pos += int64(z + l)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return errors.New("data after the diff bytes")
	}
	return nil
}

// toDense turns the coded diff bytes read so far into n dense bytes.
func (df *decodedFrame) toDense(n int64) {
	df.dense = resize(df.dense, int(n))
	clear(df.dense)
	df.walk(0, n, func(pos int64, lits []byte) { copy(df.dense[pos:], lits) })
	df.sparse = false
	df.zr, df.marks = resize(df.zr, 0), resize(df.marks, 0)
}

// walk calls fn for each run of literals of the coded diff bytes that
// overlaps [at, end), with the run's diff offset.
func (df *decodedFrame) walk(at, end int64, fn func(pos int64, lits []byte)) {
	k := sort.Search(len(df.marks), func(k int) bool { return int64(df.marks[k].diff) > at }) - 1
	if k < 0 {
		return
	}
	pos, p := int64(df.marks[k].diff), df.zr[df.marks[k].at:]
	for pos < end && len(p) > 0 {
		z, n1 := binary.Uvarint(p)
		l, n2 := binary.Uvarint(p[n1:])
		p = p[n1+n2:]
		pos += int64(z)
		if pos+int64(l) > at && pos < end {
			fn(pos, p[:l])
		}
		p = p[l:]
		pos += int64(l)
	}
}

// addDiff adds the diff bytes [at, at+len(q)) to q.
func (df *decodedFrame) addDiff(q []byte, at int64) {
	if !df.sparse {
		for j, b := range df.dense[at : at+int64(len(q))] {
			q[j] += b
		}
		return
	}
	end := at + int64(len(q))
	df.walk(at, end, func(pos int64, lits []byte) {
		lo, hi := max(pos, at), min(pos+int64(len(lits)), end)
		for x := lo; x < hi; x++ {
			q[x-at] += lits[x-pos]
		}
	})
}

// readPiece is the most bytes readRange asks of a source view at once.
const readPiece = 64 << 10

// readRange writes the frame's output bytes [off, off+len(dst)) to dst,
// in the frame's domain (through its transform df.x).
func (d *frameDecoder) readRange(df *decodedFrame, dst []byte, off int64) error {
	src := d.xsrc[df.x]
	i := sort.Search(len(df.ents), func(i int) bool { return df.ents[i].out+df.ents[i].add+df.ents[i].cp > off })
	for len(dst) > 0 && i < len(df.ents) {
		e := &df.ents[i]
		if k := off - e.out; k < e.add {
			// In pieces, so that the views below need small buffers.
			n := min(e.add-k, int64(len(dst)), readPiece)
			q := dst[:n]
			if _, err := src.ReadAt(q, e.old+k); err != nil {
				return err
			}
			df.addDiff(q, e.diff+k)
			dst, off = dst[n:], off+n
			continue
		}
		k := off - e.out - e.add
		n := int64(copy(dst, df.extra[e.extra+k:e.extra+e.cp]))
		dst, off = dst[n:], off+n
		i++
	}
	return nil
}

// readFrameHeader reads the header of frame f at patch offset off: the
// two compressed lengths (and, in version 2, the frame's flags), and the
// chained digests into digests.
func readFrameHeader(r io.Reader, h *nodeHeader, f int64, digests []byte, off int64, hop int) (frameLoc, error) {
	var lb [8]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return frameLoc{}, frameReadErr(err, off, hop, f)
	}
	zd, zr := binary.LittleEndian.Uint32(lb[:]), binary.LittleEndian.Uint32(lb[4:])
	loc := frameLoc{off: off}
	if h.arm() {
		loc.x = xformARM
	}
	if h.version >= nodeVersion2 {
		loc.rawD, loc.rawR, loc.lzmaD = zd&frameRawDiff != 0, zr&frameRawRest != 0, zd&frameLZMADiff != 0
		ref := h.version == nodeVersion3 && zr&frameRef != 0
		n := 0
		for _, set := range []bool{zd&frameARM != 0, zr&frameThumb != 0, ref} {
			if set {
				n++
			}
		}
		switch {
		case loc.rawD && loc.lzmaD:
			return frameLoc{}, &CorruptError{Hop: hop, Offset: off, Reason: fmt.Sprintf("frame %d: diff section both raw and LZMA2", f)}
		case n > 1:
			return frameLoc{}, &CorruptError{Hop: hop, Offset: off, Reason: fmt.Sprintf("frame %d: two transforms", f)}
		case zd&frameARM != 0:
			loc.x = xformARM
		case zr&frameThumb != 0:
			loc.x = xformThumb
		case ref:
			loc.x = xformRef
		}
		zd, zr = zd&frameLenMaskD, zr&frameLenMaskR
		if h.version == nodeVersion3 {
			zr &= frameLenMask3
		}
	}
	loc.zd, loc.zr = int64(zd), int64(zr)
	if loc.zd > maxCompressedFrame(h.frameSize) || loc.zr > maxCompressedFrame(h.frameSize) {
		return frameLoc{}, &CorruptError{Hop: hop, Offset: off, Reason: fmt.Sprintf("frame %d: compressed length out of range", f)}
	}
	loc.data = off + 8 + h.digestCount(f)*digestLen
	if digests != nil {
		if _, err := io.ReadFull(r, digests); err != nil {
			return frameLoc{}, frameReadErr(err, off, hop, f)
		}
	}
	return loc, nil
}

func frameReadErr(err error, off int64, hop int, f int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &CorruptError{Hop: hop, Offset: off, Reason: fmt.Sprintf("frame %d: patch ends early", f)}
	}
	return fmt.Errorf("delta: read patch %d: %w", hop, err)
}

// digestCount is the number of chained digests stored for frame f.
func (h *nodeHeader) digestCount(f int64) int64 {
	return (h.frameLen(f) + h.digestBlock() - 1) / h.digestBlock()
}

// viewCacheBytes is the memory each inner hop may spend on decoded frames
// (at least two are kept, whatever their size).
var viewCacheBytes int64 = 2 << 20

// nodeView serves the output of an inner chain hop on demand: it indexes
// the frames of the patch (read through an io.ReaderAt), decodes a frame
// when a later hop reads from it, and produces only the bytes asked for.
//
// Decoded frames are kept in compact form (decodedFrame) in a
// least-recently-used cache of viewCacheBytes: a later hop reads its
// source mostly in order but jumps back to code and data that did not
// move, and on the corpus a whole 10 MiB executable's decoded frames fit
// in about 1 MiB, so each frame is decoded once.
type nodeView struct {
	h       *nodeHeader
	patch   io.ReaderAt
	locs    []frameLoc
	dec     *frameDecoder
	z       []byte
	cache   []*decodedFrame // most recently used first
	used    int64
	decodes int64 // frames decoded (tests and benchmarks)
	out     []byte
}

// newNodeView indexes the frames of a node patch held in ra; src is the
// hop's source.
func newNodeView(h *nodeHeader, ra io.ReaderAt, src view, hop int) (*nodeView, error) {
	v := &nodeView{h: h, patch: ra, dec: newFrameDecoder(h, hop, src)}
	off := h.dataOff
	for f := int64(0); f < h.frames(); f++ {
		loc, err := readFrameHeader(io.NewSectionReader(ra, off, 8), h, f, nil, off, hop)
		if err != nil {
			return nil, err
		}
		v.locs = append(v.locs, loc)
		off = loc.data + loc.zd + loc.zr
	}
	return v, nil
}

func (v *nodeView) Size() int64 { return v.h.newSize }

func (v *nodeView) frame(f int64) (*decodedFrame, error) {
	for i, df := range v.cache {
		if df.f == f {
			copy(v.cache[1:i+1], v.cache[:i])
			v.cache[0] = df
			return df, nil
		}
	}
	df := &decodedFrame{}
	if len(v.cache) >= 2 && v.used >= viewCacheBytes {
		df = v.cache[len(v.cache)-1]
		v.cache = v.cache[:len(v.cache)-1]
		v.used -= df.mem()
	}
	loc := v.locs[f]
	n := loc.zd + loc.zr
	if int64(cap(v.z)) < n {
		v.z = make([]byte, n)
	}
	if _, err := v.patch.ReadAt(v.z[:n], loc.data); err != nil {
		return nil, frameReadErr(err, loc.off, v.dec.hop, f)
	}
	if err := v.dec.decode(df, v.z[:loc.zd], v.z[loc.zd:n], f, loc); err != nil {
		return nil, err
	}
	v.decodes++
	v.cache = append([]*decodedFrame{df}, v.cache...)
	v.used += df.mem()
	for len(v.cache) > 2 && v.used > viewCacheBytes {
		v.used -= v.cache[len(v.cache)-1].mem()
		v.cache = v.cache[:len(v.cache)-1]
	}
	return df, nil
}

// ReadAt serves the hop's output as it is (after the inverse transform of
// ARM-coded frames).
func (v *nodeView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > v.h.newSize || int64(len(p)) > v.h.newSize-off {
		return 0, fmt.Errorf("delta: read [%d,+%d) outside the %d-byte image of hop %d", off, len(p), v.h.newSize, v.dec.hop)
	}
	n := 0
	for n < len(p) {
		f := off / v.h.frameSize
		df, err := v.frame(f)
		if err != nil {
			return n, err
		}
		fs := f * v.h.frameSize
		fo := off - fs
		k := min(int64(len(p)-n), df.flen-fo)
		if df.x == xformNone || df.x == xformRef {
			if err := v.dec.readRange(df, p[n:n+int(k)], fo); err != nil {
				return n, err
			}
		} else {
			// With the bytes around that the transform needs.
			lo, hi := xformSpan(fo, fo+k, 0, df.flen)
			v.out = resize(v.out, int(hi-lo))
			if err := v.dec.readRange(df, v.out, lo); err != nil {
				return n, err
			}
			df.x.convert(v.out, fs+lo, false)
			copy(p[n:n+int(k)], v.out[fo-lo:])
		}
		n += int(k)
		off += k
	}
	return n, nil
}
