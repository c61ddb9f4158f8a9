package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
)

// BlockWriter receives the output image, in order, one block at a time:
// block index covers output bytes [index*BlockSize, (index+1)*BlockSize);
// the last block may be short. In one Apply, each index is written at most
// once, in increasing order. p is only valid during the call.
type BlockWriter interface {
	WriteBlock(index int64, p []byte) error
}

// Options tune Apply. The zero value is usable.
type Options struct {
	// BlockSize is the destination's write unit (e.g. the erase block),
	// a positive multiple of 4 of at most 16 MiB. Default 64 KiB.
	BlockSize int64
	// MaxSize caps the output (the idle slot's size): a patch that
	// declares more, or an inner hop larger than this, fails with
	// ErrTooLarge before anything is written. Default 4 GiB.
	MaxSize int64
	// MaxPatchBuffer caps the bytes of a patch held in RAM when a patch that
	// needs random access (an inner chain hop, or a BSDIFF40 patch) is not
	// an io.ReaderAt. Default 16 MiB.
	MaxPatchBuffer int64
	// Checkpoint, if set, is called after each block is written with a
	// small versioned checkpoint (see Checkpoint) for the caller to persist.
	Checkpoint func(cp []byte) error
	// Resume, if set, is the last persisted checkpoint: Apply continues at
	// the block after it and writes no block before.
	Resume []byte
	// Logger receives progress at debug level; nil discards.
	Logger *slog.Logger
}

// Result describes a finished Apply.
type Result struct {
	Size       int64    // bytes of the output image
	SHA256     [32]byte // its digest
	FirstBlock int64    // first block written in this run (after a resume)
	Blocks     int64    // blocks written in this run
}

const (
	defaultBlockSize      = 64 << 10
	defaultMaxSize        = 4 << 30
	defaultMaxPatchBuffer = 16 << 20
	bsChunk               = 64 << 10
)

// producer yields the output of the last hop in order, in chunks of at most
// one digest block, each already checked against the patch's digests.
type producer interface {
	// next returns the next chunk; restart is true when decoding can restart
	// at the chunk's offset, and chain is then the chained digest before it.
	next() (p []byte, restart bool, chain [32]byte, err error)
	size() int64
	close()
}

// Apply applies a chain of patches to src (srcSize bytes, e.g. the active
// slot) and writes the last version to dst, block by block.
//
// patches[0] is made from src; each next one from the output of the one
// before. Each patch is read once, in order; an inner hop (all but the last)
// must be in the node format and is read through io.ReaderAt when the
// io.Reader implements it (offsets from the patch's first byte, as an
// *os.File opened on the patch), else buffered up to MaxPatchBuffer. The
// last hop may be in any format. No version but src is stored: a later hop
// reads its source through the hops before it, a frame at a time.
//
// Node-format patches are checked before anything is written: the first
// against src (size and SHA-256, else ErrSourceMismatch), each next against
// the one before it. Each output block is checked against the chained
// digests before it is written (*BlockMismatchError), and the whole image
// against the declared SHA-256 at the end (ErrTargetMismatch). Malformed
// patches give a *CorruptError.
func Apply(ctx context.Context, src io.ReaderAt, srcSize int64, patches []io.Reader, dst BlockWriter, opt Options) (Result, error) {
	if opt.BlockSize == 0 {
		opt.BlockSize = defaultBlockSize
	}
	if opt.MaxSize == 0 {
		opt.MaxSize = defaultMaxSize
	}
	if opt.MaxPatchBuffer == 0 {
		opt.MaxPatchBuffer = defaultMaxPatchBuffer
	}
	if opt.BlockSize < 4 || opt.BlockSize%4 != 0 || opt.BlockSize > 16<<20 {
		return Result{}, fmt.Errorf("delta: block size %d: want a multiple of 4 up to 16 MiB", opt.BlockSize)
	}
	if len(patches) == 0 {
		return Result{}, errors.New("delta: no patch to apply")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prod, id, srcCheck, err := openChain(src, srcSize, patches, opt)
	if err != nil {
		return Result{}, err
	}
	defer prod.close()
	// The source's digest is computed beside the decoding of the first
	// frames; nothing is written, and no decoding error is reported, before
	// it is known.
	srcErr := func() error {
		if srcCheck == nil {
			return nil
		}
		err := <-srcCheck
		srcCheck = nil
		return err
	}
	defer srcErr()

	cp := Checkpoint{ID: id, BlockSize: opt.BlockSize}
	sum := sha256.New()
	if opt.Resume != nil {
		if err := cp.UnmarshalBinary(opt.Resume); err != nil {
			return Result{}, err
		}
		if cp.ID != id || cp.BlockSize != opt.BlockSize || cp.Next > (prod.size()+cp.BlockSize-1)/cp.BlockSize || cp.Restart > cp.Next*cp.BlockSize {
			return Result{}, fmt.Errorf("%w: taken for other patches or another block size", ErrCheckpoint)
		}
		if err := sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(cp.HashState); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
		}
		if ns, ok := prod.(*nodeStream); ok {
			if err := ns.skipTo(cp.Restart, cp.Digest); err != nil {
				return Result{}, err
			}
		} else if cp.Restart != 0 {
			return Result{}, fmt.Errorf("%w: restart offset %d in a bsdiff patch", ErrCheckpoint, cp.Restart)
		}
	}
	res := Result{Size: prod.size(), FirstBlock: cp.Next}
	log.Debug("delta apply", slog.Int64("size", res.Size), slog.Int64("first_block", cp.Next), slog.Int("hops", len(patches)))

	// restarts are the points decoding could restart from that lie in
	// the output not yet written; the first is at or before the write
	// position.
	type restartPoint struct {
		off   int64
		chain [32]byte
		state []byte
	}
	restarts := []restartPoint{{cp.Restart, cp.Digest, cp.HashState}}
	if restarts[0].state == nil {
		st, _ := sum.(encoding.BinaryMarshaler).MarshalBinary()
		restarts[0].state = st
	}
	pos := cp.Restart
	W := opt.BlockSize
	wbuf := make([]byte, 0, W)
	block := cp.Next
	writeBlock := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := srcErr(); err != nil {
			return err
		}
		if err := dst.WriteBlock(block, wbuf); err != nil {
			return fmt.Errorf("delta: write block %d: %w", block, err)
		}
		res.Blocks++
		block++
		wbuf = wbuf[:0]
		if opt.Checkpoint == nil {
			return nil
		}
		done := block * W
		for len(restarts) > 1 && restarts[1].off <= done {
			restarts = restarts[1:]
		}
		r := restarts[0]
		c := Checkpoint{ID: id, BlockSize: W, Next: block, Restart: r.off, Digest: r.chain, HashState: r.state}
		b, err := c.MarshalBinary()
		if err != nil {
			return err
		}
		return opt.Checkpoint(b)
	}
	for {
		p, restart, chain, err := prod.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if serr := srcErr(); serr != nil {
				return res, serr
			}
			return res, err
		}
		if restart && pos == restarts[0].off {
			restarts[0].chain = chain
		} else if restart && pos > restarts[0].off {
			st, err := sum.(encoding.BinaryMarshaler).MarshalBinary()
			if err != nil {
				return res, fmt.Errorf("delta: %w", err)
			}
			restarts = append(restarts, restartPoint{pos, chain, st})
		}
		sum.Write(p)
		if skip := block*W - pos; skip > 0 {
			k := min(skip, int64(len(p)))
			pos += k
			p = p[k:]
		}
		for len(p) > 0 {
			k := copy(wbuf[len(wbuf):W], p)
			wbuf = wbuf[:len(wbuf)+k]
			p = p[k:]
			pos += int64(k)
			if int64(len(wbuf)) == W {
				if err := writeBlock(); err != nil {
					return res, err
				}
			}
		}
	}
	if len(wbuf) > 0 {
		if err := writeBlock(); err != nil {
			return res, err
		}
	}
	if err := srcErr(); err != nil {
		return res, err
	}
	sum.Sum(res.SHA256[:0])
	if ns, ok := prod.(*nodeStream); ok && res.SHA256 != ns.h.newSHA {
		return res, fmt.Errorf("%w: whole image", ErrTargetMismatch)
	}
	return res, nil
}

// detect reads a patch's magic and returns its format and the bytes read.
func detect(r io.Reader, hop int) (Format, []byte, error) {
	b := make([]byte, 8, nodeHeaderSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, &CorruptError{Hop: hop, Offset: 0, Reason: "short header"}
	}
	switch string(b) {
	case magic40:
		return FormatBSDIFF40, b, nil
	case nodeMagic:
		return FormatNode, b, nil
	case magic43[:8]:
		b = b[:16]
		if _, err := io.ReadFull(r, b[8:]); err != nil || string(b) != magic43 {
			return 0, nil, fmt.Errorf("%w (patch %d)", ErrUnknownFormat, hop)
		}
		return FormatBSDIFF43, b, nil
	}
	return 0, nil, fmt.Errorf("%w (patch %d)", ErrUnknownFormat, hop)
}

// patchAt returns random access to the whole patch r whose first bytes
// (prefix) were already read.
func patchAt(r io.Reader, prefix []byte, limit int64) (io.ReaderAt, int64, error) {
	if ra, ok := r.(io.ReaderAt); ok {
		if s, ok := r.(interface{ Size() int64 }); ok {
			return ra, s.Size(), nil
		}
		if f, ok := r.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				return ra, fi.Size(), nil
			}
		}
	}
	rest, err := io.ReadAll(io.LimitReader(r, limit-int64(len(prefix))+1))
	if err != nil {
		return nil, 0, fmt.Errorf("delta: read patch: %w", err)
	}
	if int64(len(prefix)+len(rest)) > limit {
		return nil, 0, fmt.Errorf("%w: patch larger than the %d-byte buffer cap", ErrTooLarge, limit)
	}
	b := append(append(make([]byte, 0, len(prefix)+len(rest)), prefix...), rest...)
	return bytes.NewReader(b), int64(len(b)), nil
}

// openChain checks the headers of the chain and returns the producer of
// the last hop and the chain's identity (a digest of the headers).
func openChain(src io.ReaderAt, srcSize int64, patches []io.Reader, opt Options) (_ producer, _ [16]byte, srcCheck chan error, _ error) {
	var id [16]byte
	idh := sha256.New()
	var cur view = &readerView{r: src, size: srcSize}
	var prev *nodeHeader
	fail := func(err error) (producer, [16]byte, chan error, error) {
		if srcCheck != nil {
			<-srcCheck
		}
		return nil, id, nil, err
	}
	for i, r := range patches {
		last := i == len(patches)-1
		format, b, err := detect(r, i)
		if err != nil {
			return fail(err)
		}
		idh.Write(b)
		switch format {
		case FormatNode:
			b = b[:nodeHeaderSize]
			if _, err := io.ReadFull(r, b[8:]); err != nil {
				return fail(&CorruptError{Hop: i, Offset: 8, Reason: "short header"})
			}
			h, err := parseNodeHeader(b, opt.MaxSize)
			if err != nil {
				var ce *CorruptError
				if errors.As(err, &ce) {
					ce.Hop = i
				}
				return fail(err)
			}
			idh.Write(b[8:])
			if h.version == nodeVersion3 {
				tb, err := readRefs(r, h, i)
				if err != nil {
					return fail(err)
				}
				b = append(b, tb...)
			}
			switch {
			case prev == nil && i == 0:
				if cur.Size() != h.oldSize {
					return fail(fmt.Errorf("%w: source is %d bytes, patch expects %d", ErrSourceMismatch, cur.Size(), h.oldSize))
				}
				srcCheck = make(chan error, 1)
				go func(v view, h *nodeHeader) { srcCheck <- checkSource(v, h) }(cur, h)
			case prev != nil && (prev.newSize != h.oldSize || prev.newSHA != h.oldSHA):
				return fail(fmt.Errorf("%w: patch %d is not made from the output of patch %d", ErrSourceMismatch, i, i-1))
			case cur.Size() != h.oldSize:
				return fail(fmt.Errorf("%w: patch %d expects a %d-byte source, have %d", ErrSourceMismatch, i, h.oldSize, cur.Size()))
			}
			hsrc := cur
			if last {
				s, err := newNodeStream(h, r, hsrc, i)
				if err != nil {
					return fail(err)
				}
				copy(id[:], idh.Sum(nil))
				return s, id, srcCheck, nil
			}
			ra, _, err := patchAt(r, b, opt.MaxPatchBuffer)
			if err != nil {
				return fail(err)
			}
			v, err := newNodeView(h, ra, hsrc, i)
			if err != nil {
				return fail(err)
			}
			cur, prev = v, h
		default:
			if !last {
				return fail(fmt.Errorf("%w (patch %d is %v)", ErrChainUnsupported, i, format))
			}
			hsrc := cur
			var s *bsStream
			if format == FormatBSDIFF40 {
				ra, size, err := patchAt(r, b, opt.MaxPatchBuffer)
				if err != nil {
					return fail(err)
				}
				var h [32]byte
				if _, err := ra.ReadAt(h[:], 0); err == nil {
					idh.Write(h[8:])
				}
				s, err = openBSDIFF40(ra, size, hsrc, opt.MaxSize)
				if err != nil {
					return fail(err)
				}
			} else {
				s, err = openBSDIFF43(r, hsrc, opt.MaxSize)
				if err != nil {
					return fail(err)
				}
			}
			copy(id[:], idh.Sum(nil))
			return &bsProducer{s: s, buf: make([]byte, bsChunk)}, id, srcCheck, nil
		}
	}
	panic("unreachable")
}

func checkSource(src view, h *nodeHeader) error {
	if src.Size() != h.oldSize {
		return fmt.Errorf("%w: source is %d bytes, patch expects %d", ErrSourceMismatch, src.Size(), h.oldSize)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(src, 0, src.Size())); err != nil {
		return err
	}
	if !bytes.Equal(sum.Sum(nil), h.oldSHA[:]) {
		return fmt.Errorf("%w: SHA-256 differs", ErrSourceMismatch)
	}
	return nil
}

// bsProducer yields a bsdiff patch's output in fixed chunks.
type bsProducer struct {
	s   *bsStream
	buf []byte
	pos int64
}

func (b *bsProducer) size() int64 { return b.s.newSize }

func (b *bsProducer) close() {}

func (b *bsProducer) next() ([]byte, bool, [32]byte, error) {
	n, err := io.ReadFull(b.s, b.buf)
	if err == io.EOF {
		return nil, false, [32]byte{}, io.EOF
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, false, [32]byte{}, err
	}
	restart := b.pos == 0
	b.pos += int64(n)
	return b.buf[:n], restart, [32]byte{}, nil
}

// nodeStream yields the output of a node-format patch read in order.
type nodeStream struct {
	h       *nodeHeader
	r       io.Reader
	off     int64 // patch offset of r
	hop     int
	dec     *frameDecoder
	df      decodedFrame
	f       int64 // next frame to read
	buf     []byte
	bpos    int64
	fstart  int64
	digests []byte
	chain   [32]byte
	z       []byte
}

func newNodeStream(h *nodeHeader, r io.Reader, src view, hop int) (*nodeStream, error) {
	return &nodeStream{
		h: h, r: r, off: h.dataOff, hop: hop, dec: newFrameDecoder(h, hop, src), chain: h.newSHA,
		digests: make([]byte, (h.frameSize/h.digestBlock())*digestLen),
	}, nil
}

func (s *nodeStream) size() int64 { return s.h.newSize }
func (s *nodeStream) close()      {}

// readFrame reads frame s.f's header and compressed sections.
func (s *nodeStream) readFrame() (frameLoc, error) {
	d := s.digests[:s.h.digestCount(s.f)*digestLen]
	loc, err := readFrameHeader(s.r, s.h, s.f, d, s.off, s.hop)
	if err != nil {
		return loc, err
	}
	n := loc.zd + loc.zr
	if int64(cap(s.z)) < n {
		s.z = make([]byte, n)
	}
	s.z = s.z[:n]
	if _, err := io.ReadFull(s.r, s.z); err != nil {
		return loc, frameReadErr(err, loc.off, s.hop, s.f)
	}
	s.off = loc.data + n
	return loc, nil
}

// skipTo skips the frames before output offset off (a frame start), whose
// chained digest before it is chain.
func (s *nodeStream) skipTo(off int64, chain [32]byte) error {
	if off%s.h.frameSize != 0 {
		return fmt.Errorf("%w: restart offset %d is not a frame start", ErrCheckpoint, off)
	}
	for s.f < off/s.h.frameSize {
		if _, err := s.readFrame(); err != nil {
			return err
		}
		s.f++
	}
	s.chain = chain
	return nil
}

func (s *nodeStream) next() ([]byte, bool, [32]byte, error) {
	restart := false
	if s.bpos == int64(len(s.buf)) {
		if s.f == s.h.frames() {
			return nil, false, [32]byte{}, io.EOF
		}
		loc, err := s.readFrame()
		if err != nil {
			return nil, false, [32]byte{}, err
		}
		if err := s.dec.decode(&s.df, s.z[:loc.zd], s.z[loc.zd:], s.f, loc); err != nil {
			return nil, false, [32]byte{}, err
		}
		if s.buf == nil {
			s.buf = make([]byte, s.h.frameSize)
		}
		s.fstart = s.f * s.h.frameSize
		s.buf = s.buf[:s.h.frameLen(s.f)]
		if err := s.dec.readRange(&s.df, s.buf, 0); err != nil {
			return nil, false, [32]byte{}, err
		}
		s.df.x.convert(s.buf, s.fstart, false)
		s.bpos = 0
		s.f++
		restart = true
	}
	D := s.h.digestBlock()
	p := s.buf[s.bpos:min(s.bpos+D, int64(len(s.buf)))]
	i := s.bpos / D
	before := s.chain
	d := chainDigest(s.chain, (s.fstart+s.bpos)/D, p)
	if !bytes.Equal(d[:digestLen], s.digests[i*digestLen:(i+1)*digestLen]) {
		return nil, false, before, &BlockMismatchError{Block: (s.fstart + s.bpos) / D, Offset: s.fstart + s.bpos}
	}
	s.chain = d
	s.bpos += int64(len(p))
	return p, restart, before, nil
}

// Checkpoint is the resumable state of an Apply, taken after a block was
// written. Its binary form (MarshalBinary) is versioned, checksummed and
// about 200 bytes; a journal stores it as an opaque value.
type Checkpoint struct {
	ID        [16]byte // digest of the chain's patch headers
	BlockSize int64    // the destination block size it counts in
	Next      int64    // the next block to write
	Restart   int64    // output offset where decoding restarts (≤ Next*BlockSize)
	Digest    [32]byte // chained block digest before Restart
	HashState []byte   // SHA-256 state of the output before Restart
}

const checkpointVersion = 1

// MarshalBinary encodes the checkpoint.
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 96+len(c.HashState))
	b = append(b, 'M', 'D', 'C', checkpointVersion)
	b = append(b, c.ID[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.BlockSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Next))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Restart))
	b = append(b, c.Digest[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(c.HashState)))
	b = append(b, c.HashState...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

// UnmarshalBinary decodes a checkpoint; a malformed one gives ErrCheckpoint.
func (c *Checkpoint) UnmarshalBinary(b []byte) error {
	const fixed = 4 + 16 + 24 + 32 + 2
	if len(b) < fixed+4 || len(b) > 1024 || string(b[:3]) != "MDC" {
		return fmt.Errorf("%w: malformed", ErrCheckpoint)
	}
	if b[3] != checkpointVersion {
		return fmt.Errorf("%w: version %d", ErrCheckpoint, b[3])
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return fmt.Errorf("%w: checksum mismatch", ErrCheckpoint)
	}
	n := int(binary.LittleEndian.Uint16(body[fixed-2:]))
	if len(body) != fixed+n {
		return fmt.Errorf("%w: malformed", ErrCheckpoint)
	}
	var d Checkpoint
	copy(d.ID[:], body[4:])
	d.BlockSize = int64(binary.LittleEndian.Uint64(body[20:]))
	d.Next = int64(binary.LittleEndian.Uint64(body[28:]))
	d.Restart = int64(binary.LittleEndian.Uint64(body[36:]))
	copy(d.Digest[:], body[44:76])
	d.HashState = append([]byte(nil), body[fixed:]...)
	if d.BlockSize <= 0 || d.Next < 0 || d.Restart < 0 || d.Next > 1<<48 || d.BlockSize > 1<<30 {
		return fmt.Errorf("%w: values out of range", ErrCheckpoint)
	}
	*c = d
	return nil
}
