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
	nodeMagic      = "MTRDLT01"
	nodeVersion    = 1
	nodeHeaderSize = 100
	flagARM        = 1 << 0
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
	// DefaultDigestBlock is the output covered by one chained digest.
	DefaultDigestBlock = 64 << 10
)

// nodeHeader is the fixed header of a node-format patch.
type nodeHeader struct {
	flags     byte
	digestLog uint8
	frameSize int64
	oldSize   int64
	newSize   int64
	oldSHA    [32]byte
	newSHA    [32]byte
	raw       [nodeHeaderSize]byte
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
	b[8] = nodeVersion
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
	h := &nodeHeader{}
	copy(h.raw[:], b)
	switch {
	case string(b[:8]) != nodeMagic:
		return nil, ErrUnknownFormat
	case binary.LittleEndian.Uint32(b[96:]) != crc32.ChecksumIEEE(b[:96]):
		return nil, corrupt(96, "header checksum mismatch")
	case b[8] != nodeVersion:
		return nil, corrupt(8, "unsupported version %d", b[8])
	case b[9]&^flagARM != 0:
		return nil, corrupt(9, "unknown flags %#x", b[9])
	case b[10] != codecBzip2LZMA:
		return nil, corrupt(10, "unknown codec %d", b[10])
	case b[11] < minDigestLog || b[11] > maxDigestLog:
		return nil, corrupt(11, "digest block 2^%d out of range", b[11])
	}
	h.flags, h.digestLog = b[9], b[11]
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

// writeNode writes the node format; oldT and newT are the images in the
// transform domain (equal to old and new without the ARM transform).
func writeNode(old, new, oldT, newT []byte, cs []ctrl, arm bool, frameSize, digestBlock int64) ([]byte, error) {
	h := &nodeHeader{frameSize: frameSize, oldSize: int64(len(old)), newSize: int64(len(new))}
	for h.digestLog = minDigestLog; h.digestBlock() < digestBlock; h.digestLog++ {
	}
	if h.digestBlock() != digestBlock || digestBlock > 1<<maxDigestLog || frameSize%digestBlock != 0 || frameSize > maxFrameSize {
		return nil, fmt.Errorf("delta: frame size %d and digest block %d: want powers of two, digest block in [4 KiB, 1 MiB] dividing the frame size (at most 4 MiB)", frameSize, digestBlock)
	}
	if arm {
		h.flags |= flagARM
	}
	h.oldSHA = sha256.Sum256(old)
	h.newSHA = sha256.Sum256(new)
	h.marshal()

	var err error
	out := append([]byte(nil), h.raw[:]...)
	segs := segments(cs)
	chain := h.newSHA
	var payload []byte
	si := 0
	for f := int64(0); f < h.frames(); f++ {
		fs := f * frameSize
		fe := fs + h.frameLen(f)
		// Clip the segments to [fs, fe).
		var fsegs []segment
		for si < len(segs) && segs[si].newPos < fe {
			s := segs[si]
			lo, hi := max(s.newPos, fs), min(s.newPos+s.n, fe)
			c := segment{lo, hi - lo, -1}
			if s.old >= 0 {
				c.old = s.old + lo - s.newPos
			}
			fsegs = append(fsegs, c)
			if s.newPos+s.n <= fe {
				si++
			} else {
				break
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
			for i := int64(0); i < s.n; i++ {
				diff = append(diff, newT[s.newPos+i]-oldT[s.old+i])
			}
		}
		payload = payload[:0]
		payload = binary.AppendUvarint(payload, uint64(oldPos))
		payload = binary.AppendUvarint(payload, uint64(len(ents)))
		for _, e := range ents {
			payload = binary.AppendUvarint(payload, uint64(e.add))
			payload = binary.AppendUvarint(payload, uint64(e.copy))
			payload = binary.AppendVarint(payload, e.seek)
		}
		for _, s := range extras {
			payload = append(payload, newT[s.newPos:s.newPos+s.n]...)
		}
		var zd []byte
		if len(diff) > 0 {
			if zd, err = bzip2Compress(zeroRuns(diff)); err != nil {
				return nil, err
			}
		}
		zr, err := lzmaCompress(payload)
		if err != nil {
			return nil, err
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(zd)))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(zr)))
		for b := fs; b < fe; b += digestBlock {
			chain = chainDigest(chain, b/digestBlock, new[b:min(b+digestBlock, fe)])
			out = append(out, chain[:digestLen]...)
		}
		out = append(out, zd...)
		out = append(out, zr...)
	}
	return out, nil
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

// readZeroRuns decodes zeroRuns from r into exactly len(dst) bytes and
// checks that r ends there.
func readZeroRuns(r *bufio.Reader, dst []byte) error {
	for len(dst) > 0 {
		z, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		if z > uint64(len(dst)) || l > uint64(len(dst))-z || z+l == 0 {
			return errors.New("zero run out of range")
		}
		clear(dst[:z])
		if _, err := io.ReadFull(r, dst[z:z+l]); err != nil {
			return err
		}
		dst = dst[z+l:]
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return errors.New("data after the diff bytes")
	}
	return nil
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

// entry is a decoded control entry with its offsets: out in the frame's
// output, old in the source, diff and extra in the frame's data.
type entry struct{ out, add, cp, old, diff, extra int64 }

// decodedFrame is one frame, decompressed and checked.
type decodedFrame struct {
	f    int64
	flen int64
	ents []entry
	data []byte // the frame's diff bytes, then its extra bytes
}

// frameDecoder decodes node-format frames; its buffers have fixed sizes.
type frameDecoder struct {
	h   *nodeHeader
	hop int
	br  *bufio.Reader // LZMA2 section
	dbr *bufio.Reader // bzip2 section
}

func newFrameDecoder(h *nodeHeader, hop int) *frameDecoder {
	return &frameDecoder{h: h, hop: hop, br: bufio.NewReaderSize(nil, 4096), dbr: bufio.NewReaderSize(nil, 4096)}
}

// maxCompressedFrame bounds each compressed section of a frame.
func maxCompressedFrame(frameSize int64) int64 {
	return maxPayload(frameSize) + maxPayload(frameSize)/4 + 4096
}

// frameLoc locates a frame's compressed sections in the patch.
type frameLoc struct {
	off    int64 // patch offset of the frame header
	data   int64 // patch offset of the diff section; the rest follows
	zd, zr int64 // compressed lengths of the two sections
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
	lr, err := lzma.Reader2Config{DictCap: lzmaDictCap}.NewReader2(bytes.NewReader(zr))
	if err != nil {
		return bad(restOff, "%v", err)
	}
	d.br.Reset(lr)
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
	if df.data == nil {
		df.data = make([]byte, d.h.frameSize)
	}
	extra := nDiff
	for i := range df.ents {
		df.ents[i].extra = extra
		extra += df.ents[i].cp
	}
	if _, err := io.ReadFull(d.br, df.data[nDiff:flen]); err != nil {
		return bad(restOff, "extra bytes: %v", err)
	}
	if _, err := d.br.ReadByte(); err != io.EOF {
		return bad(restOff, "data after the extra bytes")
	}
	switch {
	case nDiff == 0 && len(zd) != 0:
		return bad(loc.data, "diff section without diff bytes")
	case nDiff > 0:
		d.dbr.Reset(bzip2.NewReader(bytes.NewReader(zd)))
		err := readZeroRuns(d.dbr, df.data[:nDiff])
		d.dbr.Reset(nil)
		if err != nil {
			return bad(loc.data, "diff bytes: %v", err)
		}
	}
	df.f, df.flen = f, flen
	return nil
}

// readRange writes the frame's output bytes [off, off+len(dst)) (in the
// hop's domain) to dst, reading old bytes from src (in the same domain).
func (df *decodedFrame) readRange(dst []byte, off int64, src view) error {
	i := sort.Search(len(df.ents), func(i int) bool { return df.ents[i].out+df.ents[i].add+df.ents[i].cp > off })
	for len(dst) > 0 && i < len(df.ents) {
		e := &df.ents[i]
		if k := off - e.out; k < e.add {
			n := min(e.add-k, int64(len(dst)))
			q := dst[:n]
			if err := readFull(src, q, e.old+k); err != nil {
				return err
			}
			for j, b := range df.data[e.diff+k : e.diff+k+n] {
				q[j] += b
			}
			dst, off = dst[n:], off+n
			continue
		}
		k := off - e.out - e.add
		n := int64(copy(dst, df.data[e.extra+k:e.extra+e.cp]))
		dst, off = dst[n:], off+n
		i++
	}
	return nil
}

func readFull(v view, p []byte, off int64) error {
	_, err := v.ReadAt(p, off)
	return err
}

// readFrameHeader reads the header of frame f at patch offset off: the
// two compressed lengths, and the chained digests into digests.
func readFrameHeader(r io.Reader, h *nodeHeader, f int64, digests []byte, off int64, hop int) (frameLoc, error) {
	var lb [8]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return frameLoc{}, frameReadErr(err, off, hop, f)
	}
	loc := frameLoc{off: off, zd: int64(binary.LittleEndian.Uint32(lb[:])), zr: int64(binary.LittleEndian.Uint32(lb[4:]))}
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

// viewCacheBytes is the memory each inner hop spends on decoded frames.
var viewCacheBytes int64 = 2 << 20

// nodeView serves the output of an inner chain hop on demand: it indexes
// the frames of the patch (read through an io.ReaderAt), decodes a frame
// when a later hop reads from it, keeping the last few, and produces only
// the bytes asked for.
type nodeView struct {
	h     *nodeHeader
	patch io.ReaderAt
	locs  []frameLoc
	src   view
	dec   *frameDecoder
	z     []byte
	cache []decodedFrame
	next  int
}

// newNodeView indexes the frames of a node patch held in ra.
func newNodeView(h *nodeHeader, ra io.ReaderAt, src view, hop int) (*nodeView, error) {
	v := &nodeView{h: h, patch: ra, src: src, dec: newFrameDecoder(h, hop)}
	off := int64(nodeHeaderSize)
	for f := int64(0); f < h.frames(); f++ {
		loc, err := readFrameHeader(io.NewSectionReader(ra, off, 8), h, f, nil, off, hop)
		if err != nil {
			return nil, err
		}
		v.locs = append(v.locs, loc)
		off = loc.data + loc.zd + loc.zr
	}
	v.cache = make([]decodedFrame, max(2, viewCacheBytes/h.frameSize))
	for i := range v.cache {
		v.cache[i].f = -1
	}
	return v, nil
}

func (v *nodeView) Size() int64 { return v.h.newSize }

func (v *nodeView) frame(f int64) (*decodedFrame, error) {
	for i := range v.cache {
		if v.cache[i].f == f {
			return &v.cache[i], nil
		}
	}
	df := &v.cache[v.next]
	v.next = (v.next + 1) % len(v.cache)
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
	return df, nil
}

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
		fo := off - f*v.h.frameSize
		k := min(int64(len(p)-n), df.flen-fo)
		if err := df.readRange(p[n:n+int(k)], fo, v.src); err != nil {
			return n, err
		}
		n += int(k)
		off += k
	}
	return n, nil
}
