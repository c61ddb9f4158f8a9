package ubootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

// Env is a set of environment variables, name to value.
type Env map[string]string

// Names returns the variable names in the order U-Boot stores them: sorted
// by bytes (strcmp).
func (e Env) Names() []string {
	n := make([]string, 0, len(e))
	for k := range e {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Clone returns a copy of e.
func (e Env) Clone() Env {
	c := make(Env, len(e))
	for k, v := range e {
		c[k] = v
	}
	return c
}

// Header sizes of one stored copy.
const (
	// HeaderSize is the header of a single copy: the CRC32.
	HeaderSize = 4
	// RedundantHeaderSize is the header of each of two copies: the CRC32
	// and the flag byte.
	RedundantHeaderSize = 5
	// MaxSize caps the size of one copy (the fw_env.config size field is
	// input): U-Boot environments are a few KiB to a few hundred KiB.
	MaxSize = 8 << 20
	// MinSize is the smallest usable copy: a redundant header and the
	// empty variable list ("\0\0").
	MinSize = RedundantHeaderSize + 2
)

// Flag byte values of the NOR style (U-Boot env/flash.c).
const (
	FlagObsolete byte = 0x00
	FlagActive   byte = 0x01
)

// FlagStyle is how the flag byte of two redundant copies says which copy
// is current.
type FlagStyle int

const (
	// Counter is a serial number incremented (mod 256) at every save; the
	// higher one wins, 0 beats 255, equal picks the first copy. U-Boot uses
	// it for NAND, eMMC, SPI flash and files (env_check_redund).
	Counter FlagStyle = iota
	// ActiveObsolete is U-Boot's NOR scheme: the new copy is written with
	// flag 1 (active), then the old copy's flag is programmed to 0
	// (obsolete), which NOR allows without an erase.
	ActiveObsolete
)

func (s FlagStyle) String() string {
	switch s {
	case Counter:
		return "counter"
	case ActiveObsolete:
		return "active-obsolete"
	}
	return fmt.Sprintf("FlagStyle(%d)", int(s))
}

var (
	// ErrFormat is wrapped by every *FormatError.
	ErrFormat = errors.New("ubootenv: malformed environment")
	// ErrCRC: a copy's stored CRC32 does not match its data.
	ErrCRC = errors.New("ubootenv: environment CRC mismatch")
	// ErrNoValidCopy: no copy has a valid CRC. U-Boot then boots with its
	// built-in default environment.
	ErrNoValidCopy = errors.New("ubootenv: no valid copy of the environment")
	// ErrTooLarge: the variables do not fit the environment size.
	ErrTooLarge = errors.New("ubootenv: variables do not fit the environment")
	// ErrBadName: a variable name is empty or holds '=' or NUL.
	ErrBadName = errors.New("ubootenv: invalid variable name")
	// ErrBadValue: a value holds a NUL byte.
	ErrBadValue = errors.New("ubootenv: invalid variable value")
	// ErrSize: an environment size outside MinSize..MaxSize.
	ErrSize = errors.New("ubootenv: invalid environment size")
)

// FormatError is malformed variable data, at Offset bytes into the copy.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("ubootenv: malformed environment at offset %d: %s", e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrFormat }

// headerSize returns the header size of one copy.
func headerSize(redundant bool) int {
	if redundant {
		return RedundantHeaderSize
	}
	return HeaderSize
}

// ParseData parses the variable area of a copy (after the header):
// "name=value\0" entries ended by an empty entry ("\0"). The end of the
// area also ends the list, as in U-Boot's himport_r. Entries without '='
// are skipped, as libubootenv does; a later duplicate replaces an earlier
// one. An entry with an empty name, or one not ended by NUL before the end
// of the area, is a *FormatError: U-Boot refuses the whole environment.
// base is added to offsets in errors (the header size).
func ParseData(data []byte, base int64) (Env, error) {
	env := Env{}
	pos := 0
	for pos < len(data) && data[pos] != 0 {
		end := bytes.IndexByte(data[pos:], 0)
		if end < 0 {
			return nil, &FormatError{Offset: base + int64(pos), Reason: "variable not terminated by NUL"}
		}
		entry := data[pos : pos+end]
		if eq := bytes.IndexByte(entry, '='); eq == 0 {
			return nil, &FormatError{Offset: base + int64(pos), Reason: "empty variable name"}
		} else if eq > 0 {
			env[string(entry[:eq])] = string(entry[eq+1:])
		}
		pos += end + 1
	}
	return env, nil
}

// CheckName reports whether name can be stored: not empty, no '=' and no
// NUL (U-Boot's import splits on both).
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// CheckValue reports whether value can be stored: no NUL.
func CheckValue(name, value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("%w: %s holds a NUL byte", ErrBadValue, name)
	}
	return nil
}

// AppendData appends env's variable area, n bytes: the entries sorted by
// name, the terminating NUL, and zero padding, as U-Boot's saveenv writes
// it. Values are stored as given (libubootenv does not escape backslashes;
// U-Boot's import would drop a backslash before another character).
func AppendData(dst []byte, env Env, n int) ([]byte, error) {
	need := 1
	for k, v := range env {
		if err := CheckName(k); err != nil {
			return dst, err
		}
		if err := CheckValue(k, v); err != nil {
			return dst, err
		}
		need += len(k) + len(v) + 2
	}
	if need > n {
		return dst, fmt.Errorf("%w: need %d bytes, have %d", ErrTooLarge, need, n)
	}
	start := len(dst)
	for _, k := range env.Names() {
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = append(dst, env[k]...)
		dst = append(dst, 0)
	}
	return append(dst, make([]byte, n-(len(dst)-start))...), nil
}

// Encode returns one stored copy of env, size bytes: the CRC32 (IEEE,
// little endian) over the variable area, the flag byte when redundant,
// and the variable area.
func Encode(env Env, size int, redundant bool, flag byte) ([]byte, error) {
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("%w: %d", ErrSize, size)
	}
	h := headerSize(redundant)
	buf := make([]byte, h, size)
	if redundant {
		buf[4] = flag
	}
	buf, err := AppendData(buf, env, size-h)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(buf, crc32.ChecksumIEEE(buf[h:]))
	return buf, nil
}

// Header is what a copy's header says.
type Header struct {
	Valid bool // the CRC matches the data
	Flag  byte // redundant copies only
}

// ReadHeader checks a stored copy's CRC and returns its flag.
func ReadHeader(b []byte, redundant bool) Header {
	h := headerSize(redundant)
	if len(b) < h {
		return Header{}
	}
	var hd Header
	if redundant {
		hd.Flag = b[4]
	}
	hd.Valid = binary.LittleEndian.Uint32(b) == crc32.ChecksumIEEE(b[h:])
	return hd
}

// Decode parses one stored copy. A CRC mismatch is ErrCRC.
func Decode(b []byte, redundant bool) (Env, Header, error) {
	h := headerSize(redundant)
	if len(b) < h+1 {
		return nil, Header{}, fmt.Errorf("%w: %d bytes", ErrSize, len(b))
	}
	hd := ReadHeader(b, redundant)
	if !hd.Valid {
		return nil, hd, ErrCRC
	}
	env, err := ParseData(b[h:], int64(h))
	return env, hd, err
}

// Choose returns the copy U-Boot loads from two redundant copies (0 or
// 1), or -1 when neither is valid. It follows env_check_redund (Counter)
// and env/flash.c env_flash_init (ActiveObsolete) of U-Boot; an
// unrecognized NOR flag pair, e.g. after a bit flip, picks the first copy.
func Choose(style FlagStyle, h0, h1 Header) int {
	switch {
	case !h0.Valid && !h1.Valid:
		return -1
	case h0.Valid && !h1.Valid:
		return 0
	case !h0.Valid && h1.Valid:
		return 1
	}
	f0, f1 := h0.Flag, h1.Flag
	if style == ActiveObsolete {
		switch {
		case f0 == FlagActive && f1 == FlagObsolete:
			return 0
		case f0 == FlagObsolete && f1 == FlagActive:
			return 1
		case f0 == f1, f0 == 0xFF:
			return 0
		case f1 == 0xFF:
			return 1
		}
		return 0
	}
	switch {
	case f0 == 255 && f1 == 0:
		return 1
	case f1 == 255 && f0 == 0:
		return 0
	case f1 > f0:
		return 1
	}
	return 0
}
