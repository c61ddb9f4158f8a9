package ymodem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Control bytes of XMODEM/YMODEM.
const (
	SOH    = 0x01 // 128-byte block follows
	STX    = 0x02 // 1024-byte block follows
	EOT    = 0x04 // end of file
	ACK    = 0x06
	NAK    = 0x15
	CAN    = 0x18 // two in a row cancel; also ZMODEM's ZDLE
	CRCReq = 'C'  // receiver asks for CRC-16 mode

	sohSize  = 128
	stxSize  = 1024
	overhead = 5 // header byte, number, complement, CRC-16
)

// errBadBlock is a block that arrived broken: the receiver NAKs it.
var errBadBlock = errors.New("ymodem: bad block")

// crcTable is CRC-16/XMODEM (polynomial 0x1021, initial 0, not
// reflected), the CRC of YMODEM's CRC mode.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 returns the CRC-16/XMODEM of b.
func CRC16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

// ParseBlock checks a whole block as it came off the line: SOH or STX,
// the block number and its complement, 128 or 1024 data bytes, CRC-16
// (big-endian). It returns the number and the data (a sub-slice of b).
// A broken block wraps errBadBlock.
func ParseBlock(b []byte) (num byte, data []byte, err error) {
	if len(b) < 1 {
		return 0, nil, fmt.Errorf("%w: empty", errBadBlock)
	}
	size := 0
	switch b[0] {
	case SOH:
		size = sohSize
	case STX:
		size = stxSize
	default:
		return 0, nil, fmt.Errorf("%w: header byte %#02x", errBadBlock, b[0])
	}
	if len(b) != size+overhead {
		return 0, nil, fmt.Errorf("%w: %d bytes, want %d", errBadBlock, len(b), size+overhead)
	}
	if b[1] != ^b[2] {
		return 0, nil, fmt.Errorf("%w: block number %#02x, complement %#02x", errBadBlock, b[1], b[2])
	}
	data = b[3 : 3+size]
	want := uint16(b[3+size])<<8 | uint16(b[4+size])
	if got := CRC16(data); got != want {
		return 0, nil, fmt.Errorf("%w: block %d: CRC %#04x, sent %#04x", errBadBlock, b[1], got, want)
	}
	return b[1], data, nil
}

// Header is what block 0 announces.
type Header struct {
	Name    string    // as sent; never use it as a path
	Size    int64     // bytes
	ModTime time.Time // zero when not sent
}

// ParseHeader reads block 0's data: the name, NUL, then space-separated
// decimal size, octal modification time and octal mode (lrzsz adds
// serial, files left and bytes left), NUL. An empty name is the end of
// the batch (ok false). The size is required (ErrHeader without it);
// a size too big for an int64 is ErrTooLarge.
func ParseHeader(data []byte) (h Header, ok bool, err error) {
	name, rest, found := strings.Cut(string(data), "\x00")
	if !found {
		return Header{}, false, fmt.Errorf("%w: name not terminated", ErrHeader)
	}
	if name == "" {
		return Header{}, false, nil
	}
	for _, c := range name {
		// The name is shown on the technician's terminal: no escape
		// sequences, no control characters, valid UTF-8.
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			return Header{}, false, fmt.Errorf("%w: control character or invalid UTF-8 in the name %q", ErrHeader, name)
		}
	}
	info, _, _ := strings.Cut(rest, "\x00")
	fields := strings.Fields(info)
	if len(fields) == 0 {
		return Header{}, false, fmt.Errorf("%w: %q: no size (the size is required)", ErrHeader, name)
	}
	for _, c := range fields[0] {
		if c < '0' || c > '9' {
			return Header{}, false, fmt.Errorf("%w: %q: size %q is not decimal", ErrHeader, name, fields[0])
		}
	}
	size, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return Header{}, false, fmt.Errorf("%w: %q: size %s", ErrTooLarge, name, fields[0])
	}
	h = Header{Name: name, Size: size}
	if len(fields) > 1 {
		if t, err := strconv.ParseInt(fields[1], 8, 64); err == nil && t > 0 {
			h.ModTime = time.Unix(t, 0).UTC()
		}
	}
	return h, true, nil
}
