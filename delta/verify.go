package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// VerifyBlocks proves which part of dst, the image a node-format patch
// produces (e.g. the idle slot after an interrupted apply), is already
// right: it checks dst against the patch's chained block digests from the
// start and returns the length of the verified prefix, a multiple of the
// patch's digest block (or the whole image). It reads the patch once and
// skips the compressed data. A read error of dst ends the proof there.
func VerifyBlocks(patch io.Reader, dst io.ReaderAt) (int64, error) {
	format, b, err := detect(patch, 0)
	if err != nil {
		return 0, err
	}
	if format != FormatNode {
		return 0, fmt.Errorf("%w: %v patches carry no block digests", ErrUnknownFormat, format)
	}
	b = b[:nodeHeaderSize]
	if _, err := io.ReadFull(patch, b[8:]); err != nil {
		return 0, &CorruptError{Offset: 8, Reason: "short header"}
	}
	h, err := parseNodeHeader(b, 1<<48)
	if err != nil {
		return 0, err
	}
	D := h.digestBlock()
	digests := make([]byte, (h.frameSize/D)*digestLen)
	block := make([]byte, D)
	chain := h.newSHA
	off := int64(nodeHeaderSize)
	for f := int64(0); f < h.frames(); f++ {
		d := digests[:h.digestCount(f)*digestLen]
		loc, err := readFrameHeader(patch, h, f, d, off, 0)
		if err != nil {
			return f * h.frameSize, err
		}
		if _, err := io.CopyN(io.Discard, patch, loc.zd+loc.zr); err != nil {
			return f * h.frameSize, frameReadErr(err, loc.data, 0, f)
		}
		off = loc.data + loc.zd + loc.zr
		fs := f * h.frameSize
		for i := int64(0); i < h.digestCount(f); i++ {
			pos := fs + i*D
			p := block[:min(D, h.newSize-pos)]
			if n, err := dst.ReadAt(p, pos); n < len(p) {
				if err == nil || errors.Is(err, io.EOF) {
					return pos, nil
				}
				return pos, fmt.Errorf("delta: read destination: %w", err)
			}
			next := chainDigest(chain, pos/D, p)
			if !bytes.Equal(next[:digestLen], d[i*digestLen:(i+1)*digestLen]) {
				return pos, nil
			}
			chain = next
		}
	}
	return h.newSize, nil
}
