package flashrec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"meterupd/boards/hw"
)

// HeaderSize is the fixed size of a frame header.
const HeaderSize = 32

// MaxRegion caps the region Scan reads into memory. Boards declare these
// partitions, so this is a sanity bound, not a limit set by input.
const MaxRegion = 16 << 20

var (
	// ErrGeometry: the flash or region cannot hold frames.
	ErrGeometry = errors.New("flashrec: unusable flash geometry")
	// ErrTooLarge: a payload exceeds the caller's cap or the space an area has.
	ErrTooLarge = errors.New("flashrec: payload too large")
	// ErrNewerVersion: a valid frame was written by a newer format version.
	ErrNewerVersion = errors.New("flashrec: frame written by a newer version")
	// ErrVerify: a programmed frame did not read back as written.
	ErrVerify = errors.New("flashrec: read-back mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame is one valid frame found on flash.
type Frame struct {
	Seq     uint64
	Off     int64  // offset of the frame within the scanned flash
	Len     int64  // frame length including padding
	Version uint16 // format version of the frame
	Payload []byte
	// Raw is the header and payload (no padding): what a hash chain covers.
	Raw []byte
}

// Pad rounds n up to the write unit ws.
func Pad(n, ws int64) int64 { return (n + ws - 1) / ws * ws }

// Encode frames payload with the given magic, version and sequence number,
// padded with zeros to the write unit ws.
func Encode(magic [4]byte, version uint16, seq uint64, payload []byte, ws int64) []byte {
	n := Pad(int64(HeaderSize+len(payload)), ws)
	b := make([]byte, n)
	copy(b[0:4], magic[:])
	binary.LittleEndian.PutUint16(b[4:], version)
	binary.LittleEndian.PutUint16(b[6:], HeaderSize)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[20:], uint32(n))
	copy(b[HeaderSize:], payload)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[HeaderSize:], castagnoli))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// Parse decodes the frame at the start of b. It returns ok=false when b does
// not start with a complete valid frame of this magic with a payload of at
// most maxPayload bytes and a version of at most version; a valid frame of a
// newer version is ErrNewerVersion. The returned Frame's Payload and Raw
// alias b.
func Parse(b []byte, magic [4]byte, version uint16, maxPayload int) (Frame, bool, error) {
	if len(b) < HeaderSize || !bytes.Equal(b[:4], magic[:]) {
		return Frame{}, false, nil
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return Frame{}, false, nil
	}
	v := binary.LittleEndian.Uint16(b[4:])
	hs := binary.LittleEndian.Uint16(b[6:])
	plen := int64(binary.LittleEndian.Uint32(b[16:]))
	flen := int64(binary.LittleEndian.Uint32(b[20:]))
	if hs != HeaderSize || plen > int64(maxPayload) || flen < HeaderSize+plen || flen > int64(len(b)) {
		return Frame{}, false, nil
	}
	if crc32.Checksum(b[HeaderSize:flen], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return Frame{}, false, nil
	}
	if v > version {
		return Frame{}, false, fmt.Errorf("%w: version %d, this build reads %d", ErrNewerVersion, v, version)
	}
	return Frame{
		Seq:     binary.LittleEndian.Uint64(b[8:]),
		Len:     flen,
		Version: v,
		Payload: b[HeaderSize : HeaderSize+plen],
		Raw:     b[:HeaderSize+plen],
	}, true, nil
}

// Scan is what a region holds.
type Scan struct {
	Frames []Frame // valid frames in offset order; offsets relative to the region
	// Invalid lists the offsets of write units skipped because they held
	// non-erased bytes that do not start a valid frame (torn or damaged).
	Invalid []int64
	// DirtyEnd is the end of the last write unit holding a non-erased byte:
	// the first offset where an append may go.
	DirtyEnd int64
}

// ScanBytes scans a region already read into b (ws divides len(b)).
func ScanBytes(b []byte, ws int64, magic [4]byte, version uint16, maxPayload int) (Scan, error) {
	var s Scan
	n := int64(len(b))
	for off := int64(0); off < n; {
		if isErased(b[off:min(off+HeaderSize, n)]) {
			j := firstNotFF(b[off:])
			if j < 0 {
				break
			}
			off += int64(j) / ws * ws
			if isErased(b[off:min(off+HeaderSize, n)]) {
				// the non-erased byte is inside this unit but past the header
				s.Invalid = append(s.Invalid, off)
				off += ws
				s.DirtyEnd = off
				continue
			}
		}
		f, ok, err := Parse(b[off:], magic, version, maxPayload)
		if err != nil {
			return Scan{}, fmt.Errorf("at %d: %w", off, err)
		}
		if !ok || f.Len%ws != 0 { // a frame is always padded to the write unit
			s.Invalid = append(s.Invalid, off)
			off += ws
			s.DirtyEnd = off
			continue
		}
		f.Off = off
		s.Frames = append(s.Frames, f)
		off += f.Len
		s.DirtyEnd = off
	}
	return s, nil
}

// ReadRegion reads all of f into memory (at most MaxRegion bytes).
func ReadRegion(f hw.Flash) ([]byte, error) {
	size := f.Size()
	if size <= 0 || size > MaxRegion {
		return nil, fmt.Errorf("%w: region of %d bytes (limit %d)", ErrGeometry, size, MaxRegion)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("flashrec: read: %w", err)
	}
	return b, nil
}

func isErased(b []byte) bool { return firstNotFF(b) < 0 }

func firstNotFF(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != ^uint64(0) {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0xFF {
			return i
		}
	}
	return -1
}

// Program writes frame at off after checking that the range reads erased,
// and reads it back. A range that is not erased is ErrNotErased (wrapping
// hw.ErrNotErased) and nothing is programmed.
func Program(f hw.Flash, frame []byte, off int64) error {
	got := make([]byte, len(frame))
	if _, err := f.ReadAt(got, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("flashrec: read before program at %d: %w", off, err)
	}
	if !isErased(got) {
		return fmt.Errorf("flashrec: program at %d: %w", off, hw.ErrNotErased)
	}
	if _, err := f.WriteAt(frame, off); err != nil {
		return fmt.Errorf("flashrec: program at %d: %w", off, err)
	}
	if _, err := f.ReadAt(got, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("flashrec: read back at %d: %w", off, err)
	}
	if !bytes.Equal(got, frame) {
		return fmt.Errorf("%w at %d", ErrVerify, off)
	}
	return nil
}
