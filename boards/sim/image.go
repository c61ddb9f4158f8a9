package sim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Image markers: a slot image whose first HeaderSize bytes contain one of
// these strings fails to boot (MarkUnbootable: kernel panic, watchdog reset)
// or boots but its metrology produces no readings (MarkUnhealthy).
const (
	MarkUnbootable = "SIM:UNBOOTABLE"
	MarkUnhealthy  = "SIM:UNHEALTHY"
)

// HeaderSize is the size of a sim image header.
const HeaderSize = 4096

const (
	imageMagic   = "METERUPD-SIM-IMAGE 1\n"
	maxNameLen   = 64 // version and mark length
	maxMarks     = 8
	baseSeedText = "meterupd-sim-image-base"
)

// Image header errors.
var (
	ErrNoImage  = errors.New("sim: no sim image header")
	ErrBadImage = errors.New("sim: malformed sim image header")
)

// ImageHeader is the first HeaderSize bytes of a sim image, as text lines
// (so `head -c 200 A.bin` shows it) followed by zero bytes:
//
//	METERUPD-SIM-IMAGE 1
//	version <version>
//	size <total image size in bytes, header included>
//	crc32 <CRC-32 (IEEE) of bytes HeaderSize..size, 8 lowercase hex digits>
//	marks <mark> <mark>…
//	<empty line>
//
// Version and marks are 1..64 printable ASCII characters without spaces;
// at most 8 marks. The simulated bootloader checks the CRC before it jumps,
// as U-Boot's bootm checks a uImage's data CRC, so a partly written slot
// does not boot.
type ImageHeader struct {
	Version string
	Size    int64
	CRC     uint32
	Marks   []string
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func sanitize(s string) string {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b)
}

// Marshal returns the HeaderSize-byte header block. It fails on a version or
// mark that breaks the rules above.
func (h ImageHeader) Marshal() ([]byte, error) {
	if !validName(h.Version) {
		return nil, fmt.Errorf("%w: version %q", ErrBadImage, h.Version)
	}
	if len(h.Marks) > maxMarks {
		return nil, fmt.Errorf("%w: %d marks", ErrBadImage, len(h.Marks))
	}
	for _, m := range h.Marks {
		if !validName(m) {
			return nil, fmt.Errorf("%w: mark %q", ErrBadImage, m)
		}
	}
	if h.Size < HeaderSize || h.Size > maxPartSize {
		return nil, fmt.Errorf("%w: size %d", ErrBadImage, h.Size)
	}
	var sb strings.Builder
	sb.WriteString(imageMagic)
	fmt.Fprintf(&sb, "version %s\nsize %d\ncrc32 %08x\nmarks", h.Version, h.Size, h.CRC)
	for _, m := range h.Marks {
		sb.WriteString(" " + m)
	}
	sb.WriteString("\n\n")
	out := make([]byte, HeaderSize)
	copy(out, sb.String()) // at most ~700 bytes: fits
	return out, nil
}

// ParseImageHeader parses a header block (at least HeaderSize bytes; only
// the first HeaderSize are looked at). It is strict: anything Marshal would
// not write is an error wrapping ErrBadImage, with the byte offset.
func ParseImageHeader(blk []byte) (ImageHeader, error) {
	if len(blk) < HeaderSize {
		return ImageHeader{}, fmt.Errorf("%w: header block of %d bytes", ErrBadImage, len(blk))
	}
	blk = blk[:HeaderSize]
	if !bytes.HasPrefix(blk, []byte(imageMagic)) {
		return ImageHeader{}, ErrNoImage
	}
	off := len(imageMagic)
	bad := func(what string) (ImageHeader, error) {
		return ImageHeader{}, fmt.Errorf("%w: %s at byte %d", ErrBadImage, what, off)
	}
	line := func(key string) (string, bool) {
		end := bytes.IndexByte(blk[off:], '\n')
		if end < 0 {
			return "", false
		}
		l := string(blk[off : off+end])
		v, ok := strings.CutPrefix(l, key)
		if !ok {
			return "", false
		}
		off += end + 1
		return v, true
	}
	var h ImageHeader
	v, ok := line("version ")
	if !ok || !validName(v) {
		return bad("bad version line")
	}
	h.Version = v
	v, ok = line("size ")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || strconv.FormatInt(n, 10) != v || n < HeaderSize || n > maxPartSize {
		return bad("bad size line")
	}
	h.Size = n
	v, ok = line("crc32 ")
	c, err := strconv.ParseUint(v, 16, 32)
	if !ok || err != nil || len(v) != 8 || fmt.Sprintf("%08x", c) != v {
		return bad("bad crc32 line")
	}
	h.CRC = uint32(c)
	v, ok = line("marks")
	if !ok || (v != "" && v[0] != ' ') {
		return bad("bad marks line")
	}
	if v != "" {
		h.Marks = strings.Split(v[1:], " ")
		if len(h.Marks) > maxMarks {
			return bad("too many marks")
		}
		for _, m := range h.Marks {
			if !validName(m) {
				return bad("bad mark")
			}
		}
	}
	if off >= len(blk) || blk[off] != '\n' {
		return bad("missing end of header")
	}
	off++
	for i := off; i < len(blk); i++ {
		if blk[i] != 0 {
			off = i
			return bad("non-zero padding")
		}
	}
	return h, nil
}

// ReadImageHeader reads and parses the header of the image in r.
func ReadImageHeader(r io.ReaderAt) (ImageHeader, error) {
	blk := make([]byte, HeaderSize)
	if _, err := r.ReadAt(blk, 0); err != nil {
		return ImageHeader{}, fmt.Errorf("sim: read image header: %w", err)
	}
	return ParseImageHeader(blk)
}

// Image returns a deterministic sim image of size bytes (at least
// HeaderSize) for version, with marks in its header. Its body is one common
// pseudo-random base with edits seeded by the version: small overwrites
// scattered about every 16 KiB and a few short insertions, so two versions
// differ as two releases of a program do, mostly equal with scattered
// changes and shifts. Characters of version and marks that the header
// cannot hold are replaced by '_', and marks beyond 8 are dropped.
func Image(size int, version string, marks ...string) []byte {
	size = max(size, HeaderSize)
	img := make([]byte, size)
	body := img[HeaderSize:]
	base := rand.NewChaCha8(sha256.Sum256([]byte(baseSeedText)))
	base.Read(body) // never fails
	if len(body) > 0 {
		r := rand.New(rand.NewChaCha8(sha256.Sum256([]byte(baseSeedText + "\x00" + version))))
		for range 1 + len(body)/(16<<10) {
			pos := r.IntN(len(body))
			for i := pos; i < min(pos+1+r.IntN(32), len(body)); i++ {
				body[i] = byte(r.Uint32())
			}
		}
		for range 1 + len(body)>>20 {
			pos, n := r.IntN(len(body)), 1+r.IntN(256)
			if pos+n < len(body) {
				copy(body[pos+n:], body[pos:])
			}
			for i := pos; i < min(pos+n, len(body)); i++ {
				body[i] = byte(r.Uint32())
			}
		}
	}
	h := ImageHeader{Version: sanitize(version), Size: int64(size), CRC: crc32.ChecksumIEEE(body)}
	for _, m := range marks {
		if len(h.Marks) < maxMarks {
			h.Marks = append(h.Marks, sanitize(m))
		}
	}
	hdr, _ := h.Marshal() // cannot fail: fields sanitised, size checked
	copy(img, hdr)
	return img
}
