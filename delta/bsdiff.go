package delta

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	dbzip2 "github.com/dsnet/compress/bzip2"
)

const (
	magic40 = "BSDIFF40"
	magic43 = "ENDSLEY/BSDIFF43"
	// maxOldPos bounds the old position a bsdiff patch may seek to; bspatch
	// reads bytes outside the old image as zero, but the position itself
	// must never overflow.
	maxOldPos = 1 << 48
)

// offtout encodes x as bsdiff's 8-byte little-endian sign-magnitude integer.
func offtout(b []byte, x int64) {
	u := uint64(x)
	if x < 0 {
		u = uint64(-x) | 1<<63
	}
	binary.LittleEndian.PutUint64(b, u)
}

// offtin decodes bsdiff's 8-byte sign-magnitude integer. Negative zero is 0.
func offtin(b []byte) int64 {
	u := binary.LittleEndian.Uint64(b)
	v := int64(u &^ (1 << 63))
	if u&(1<<63) != 0 {
		return -v
	}
	return v
}

// bzip2Compress compresses p with the smallest block size that holds it
// in one block (level 9 for more than 800 kB): a reader then allocates
// only that much.
func bzip2Compress(p []byte) ([]byte, error) {
	var buf bytes.Buffer
	level := min(9, max(1, (len(p)+99_999)/100_000))
	w, err := dbzip2.NewWriter(&buf, &dbzip2.WriterConfig{Level: level})
	if err != nil {
		return nil, fmt.Errorf("delta: bzip2 writer: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return nil, fmt.Errorf("delta: bzip2: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("delta: bzip2: %w", err)
	}
	return buf.Bytes(), nil
}

func ctrlBytes(cs []ctrl) []byte {
	b := make([]byte, 24*len(cs))
	for i, c := range cs {
		offtout(b[24*i:], c.add)
		offtout(b[24*i+8:], c.copy)
		offtout(b[24*i+16:], c.seek)
	}
	return b
}

// writeBSDIFF40 writes Colin Percival's format, as Debian's bsdiff does: a
// 32-byte header (magic, compressed ctrl length, compressed diff length, new
// size) and three bzip2 streams: control entries, diff bytes, extra bytes.
func writeBSDIFF40(old, new []byte, cs []ctrl) ([]byte, error) {
	diff, extra := scriptStreams(old, new, cs)
	zc, err := bzip2Compress(ctrlBytes(cs))
	if err != nil {
		return nil, err
	}
	zd, err := bzip2Compress(diff)
	if err != nil {
		return nil, err
	}
	ze, err := bzip2Compress(extra)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 32, 32+len(zc)+len(zd)+len(ze))
	copy(out, magic40)
	offtout(out[8:], int64(len(zc)))
	offtout(out[16:], int64(len(zd)))
	offtout(out[24:], int64(len(new)))
	out = append(out, zc...)
	out = append(out, zd...)
	return append(out, ze...), nil
}

// writeBSDIFF43 writes the format of mendsley/bsdiff: the 16-byte magic, the
// new size, and one bzip2 stream in which each control entry is followed by
// its diff bytes and then its extra bytes.
func writeBSDIFF43(old, new []byte, cs []ctrl) ([]byte, error) {
	var body bytes.Buffer
	var hdr [24]byte
	var np, op int64
	for _, c := range cs {
		offtout(hdr[:], c.add)
		offtout(hdr[8:], c.copy)
		offtout(hdr[16:], c.seek)
		body.Write(hdr[:])
		for i := int64(0); i < c.add; i++ {
			body.WriteByte(new[np+i] - old[op+i])
		}
		body.Write(new[np+c.add : np+c.add+c.copy])
		np += c.add + c.copy
		op += c.add + c.seek
	}
	z, err := bzip2Compress(body.Bytes())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 24, 24+len(z))
	copy(out, magic43)
	offtout(out[16:], int64(len(new)))
	return append(out, z...), nil
}

// bsStream produces the output of a BSDIFF40 or BSDIFF43 patch in order. In
// BSDIFF43 the three readers are the same interleaved stream. Every control
// value is range-checked before use; old bytes outside the source count as
// zero, as in bspatch.
type bsStream struct {
	src                        view
	ctrl, diff, extra          io.Reader
	ctrlOff, diffOff, extraOff int64 // patch offsets of the streams
	newSize                    int64
	newPos, oldPos             int64
	remAdd, remCopy, seek      int64
	nctrl                      int64
	scratch                    []byte
	hdr                        [24]byte
}

func (s *bsStream) size() int64 { return s.newSize }

func (s *bsStream) streamErr(off int64, what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(off, "%s stream ends early (output offset %d)", what, s.newPos)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	return corrupt(off, "%s stream: %v", what, err)
}

func (s *bsStream) nextCtrl() error {
	if _, err := io.ReadFull(s.ctrl, s.hdr[:]); err != nil {
		return s.streamErr(s.ctrlOff, "control", err)
	}
	add, cp, seek := offtin(s.hdr[:]), offtin(s.hdr[8:]), offtin(s.hdr[16:])
	n := s.nctrl
	s.nctrl++
	rest := s.newSize - s.newPos
	switch {
	case add < 0 || cp < 0:
		return corrupt(s.ctrlOff, "control entry %d has a negative length", n)
	case add > rest || cp > rest-add:
		return corrupt(s.ctrlOff, "control entry %d writes past the declared size %d", n, s.newSize)
	case seek < -maxOldPos || seek > maxOldPos:
		return corrupt(s.ctrlOff, "control entry %d seeks out of range", n)
	}
	// The previous entry's seek applies now, after its add bytes were read.
	pos := s.oldPos + s.seek
	if pos < -maxOldPos || pos > maxOldPos || pos+add > maxOldPos {
		return corrupt(s.ctrlOff, "control entry %d seeks out of range", n)
	}
	s.oldPos, s.remAdd, s.remCopy, s.seek = pos, add, cp, seek
	return nil
}

// Read fills p with the next output bytes.
func (s *bsStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.remAdd == 0 && s.remCopy == 0 {
			if s.newPos == s.newSize {
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			if err := s.nextCtrl(); err != nil {
				return n, err
			}
			continue
		}
		if s.remAdd > 0 {
			k := int(min(int64(len(p)-n), s.remAdd, int64(len(s.scratch))))
			q := p[n : n+k]
			if _, err := io.ReadFull(s.diff, q); err != nil {
				return n, s.streamErr(s.diffOff, "diff", err)
			}
			if err := readOld(s.src, s.scratch[:k], s.oldPos); err != nil {
				return n, err
			}
			for i, b := range s.scratch[:k] {
				q[i] += b
			}
			n += k
			s.remAdd -= int64(k)
			s.oldPos += int64(k)
			s.newPos += int64(k)
			continue
		}
		k := int(min(int64(len(p)-n), s.remCopy))
		if _, err := io.ReadFull(s.extra, p[n:n+k]); err != nil {
			return n, s.streamErr(s.extraOff, "extra", err)
		}
		n += k
		s.remCopy -= int64(k)
		s.newPos += int64(k)
	}
	return n, nil
}

// openBSDIFF40 opens a BSDIFF40 patch held in ra (the whole patch, from
// offset 0, at most size bytes).
func openBSDIFF40(ra io.ReaderAt, size int64, src view, maxOut int64) (*bsStream, error) {
	var h [32]byte
	if _, err := ra.ReadAt(h[:], 0); err != nil {
		return nil, corrupt(0, "short header")
	}
	clen, dlen, nsize := offtin(h[8:]), offtin(h[16:]), offtin(h[24:])
	switch {
	case clen < 0 || clen > size-32:
		return nil, corrupt(8, "control length %d out of range", clen)
	case dlen < 0 || dlen > size-32-clen:
		return nil, corrupt(16, "diff length %d out of range", dlen)
	case nsize < 0:
		return nil, corrupt(24, "negative new size %d", nsize)
	case nsize > maxOut:
		return nil, fmt.Errorf("%w: patch declares %d bytes, cap %d", ErrTooLarge, nsize, maxOut)
	}
	s := &bsStream{
		src: src, newSize: nsize, scratch: make([]byte, 32<<10),
		ctrlOff: 32, diffOff: 32 + clen, extraOff: 32 + clen + dlen,
	}
	s.ctrl = bzip2.NewReader(io.NewSectionReader(ra, 32, clen))
	s.diff = bzip2.NewReader(io.NewSectionReader(ra, 32+clen, dlen))
	s.extra = bzip2.NewReader(io.NewSectionReader(ra, 32+clen+dlen, size-32-clen-dlen))
	return s, nil
}

// openBSDIFF43 opens a BSDIFF43 patch whose 16-byte magic was already read
// from r.
func openBSDIFF43(r io.Reader, src view, maxOut int64) (*bsStream, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, corrupt(16, "short header")
	}
	nsize := offtin(h[:])
	switch {
	case nsize < 0:
		return nil, corrupt(16, "negative new size %d", nsize)
	case nsize > maxOut:
		return nil, fmt.Errorf("%w: patch declares %d bytes, cap %d", ErrTooLarge, nsize, maxOut)
	}
	z := bzip2.NewReader(r)
	return &bsStream{
		src: src, newSize: nsize, scratch: make([]byte, 32<<10),
		ctrl: z, diff: z, extra: z, ctrlOff: 24, diffOff: 24, extraOff: 24,
	}, nil
}
