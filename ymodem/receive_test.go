package ymodem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// script is a scripted sender on a fake line with a fake clock: Read
// hands out the chunks in order; a nil chunk, or the end of the script,
// is silence until the read deadline, which the clock then jumps to. No
// test sleeps. Everything the receiver writes is kept.
type script struct {
	now      time.Time
	deadline time.Time
	chunks   [][]byte
	wrote    bytes.Buffer
}

func (s *script) SetReadDeadline(t time.Time) error { s.deadline = t; return nil }
func (s *script) Now() time.Time                    { return s.now }
func (s *script) Write(p []byte) (int, error)       { return s.wrote.Write(p) }

func (s *script) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 || s.chunks[0] == nil {
		if len(s.chunks) > 0 {
			s.chunks = s.chunks[1:]
		}
		if s.deadline.After(s.now) {
			s.now = s.deadline
		}
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// transcript names what the receiver sent: "C ACK NAK CAN".
func (s *script) transcript() string {
	var names []string
	for _, b := range s.wrote.Bytes() {
		switch b {
		case CRCReq:
			names = append(names, "C")
		case ACK:
			names = append(names, "ACK")
		case NAK:
			names = append(names, "NAK")
		case CAN:
			names = append(names, "CAN")
		default:
			names = append(names, fmt.Sprintf("%#02x", b))
		}
	}
	return strings.Join(names, " ")
}

// block encodes a block of size (128 or 1024) bytes, data padded with ^Z
// as sz pads a file's last block (block 0 with NUL).
func block(num byte, data []byte, size int) []byte {
	b := []byte{SOH, num, ^num}
	if size == stxSize {
		b[0] = STX
	}
	pad := byte(0x1a)
	if num == 0 {
		pad = 0
	}
	d := bytes.Repeat([]byte{pad}, size)
	copy(d, data)
	crc := CRC16(d)
	return append(append(b, d...), byte(crc>>8), byte(crc))
}

func header(name string, size int64) []byte {
	return block(0, fmt.Appendf(nil, "%s\x00%d 14712345670 100644 0 1 %d\x00", name, size, size), sohSize)
}

var (
	end0     = block(0, nil, sohSize)
	eot      = []byte{EOT}
	zrqinit  = []byte("rz\r**\x18B00000000000000\r\x8a\x11")
	fileData = func() []byte {
		b := make([]byte, 1500) // one 1K block, then 128-byte blocks
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}()
)

// fileBlocks is fileData as sz -k sends it: 1K, then 128-byte blocks.
func fileBlocks() [][]byte {
	out := [][]byte{block(1, fileData[:1024], stxSize)}
	for i, off := byte(2), 1024; off < len(fileData); i, off = i+1, off+128 {
		out = append(out, block(i, fileData[off:min(off+128, len(fileData))], sohSize))
	}
	return out
}

func cat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(b ...[]byte) [][]byte { return b }

func corrupt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

const okFile = "C ACK C ACK ACK ACK ACK ACK NAK ACK C ACK"

// TestReceiveRules: each rule of the package comment against a scripted
// sender (RELIABILITY.md case 55: CRC mismatch, block number skipped or
// repeated, block 0 announcing 4 GiB, a transfer that stops mid-way, CAN
// CAN, a second file, the ZMODEM preamble).
func TestReceiveRules(t *testing.T) {
	blocks := fileBlocks()
	rest := blocks[1:]
	tail := one(eot, eot, end0)
	for _, tc := range []struct {
		name       string
		limit      int64
		chunks     [][]byte
		wantErr    error
		wantData   []byte // nil: nothing written
		transcript string // "" : not checked
	}{
		{"mixed 1K and 128-byte blocks", 1 << 20, cat(one(header("p.pkg", 1500)), blocks, tail), nil, fileData, okFile},
		{"ZMODEM preamble of a plain sz is noise", 1 << 20, cat(one(zrqinit, header("p.pkg", 1500)), blocks, tail), nil, fileData, okFile},
		{"CRC mismatch is NAKed, then resent",
			1 << 20, cat(one(header("p.pkg", 1500), corrupt(blocks[0], 500), nil, blocks[0]), rest, tail), nil, fileData,
			"C ACK C NAK ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"broken complement is NAKed", 1 << 20, cat(one(header("p.pkg", 1500), corrupt(blocks[0], 2), nil), blocks, tail), nil, fileData,
			"C ACK C NAK ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"block cut short is NAKed", 1 << 20, cat(one(header("p.pkg", 1500), blocks[0][:600], nil), blocks, tail), nil, fileData,
			"C ACK C NAK ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"repeated block re-ACKed, written once", 1 << 20, cat(one(header("p.pkg", 1500)), one(blocks[0], blocks[0]), rest, tail), nil, fileData,
			"C ACK C ACK ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"block 0 repeated (lost ACK) asks again", 1 << 20, cat(one(header("p.pkg", 1500), header("p.pkg", 1500)), blocks, tail), nil, fileData,
			"C ACK C ACK C ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"lost ACK of EOT", 1 << 20, cat(one(header("p.pkg", 1500)), blocks, one(eot, eot, eot, end0)), nil, fileData,
			"C ACK C ACK ACK ACK ACK ACK NAK ACK C ACK C ACK"},
		{"single CAN is noise", 1 << 20, cat(one([]byte{CAN, 'B'}, header("p.pkg", 1500)), blocks, tail), nil, fileData, okFile},
		{"sender slow to start", 1 << 20, cat(one(nil, nil, header("p.pkg", 1500)), blocks, tail), nil, fileData,
			"C C " + okFile},
		{"empty file", 1 << 20, one(header("e", 0), eot, eot, end0), nil, []byte{}, "C ACK C NAK ACK C ACK"},

		{"block number skipped", 1 << 20, cat(one(header("p.pkg", 1500), blocks[0], blocks[2])), ErrSequence, fileData[:1024],
			"C ACK C ACK CAN CAN"},
		{"block 0 announcing 4 GiB", 1 << 20, one(header("big.pkg", 4<<30)), ErrTooLarge, nil, "C CAN CAN"},
		{"size beyond int64", 1 << 20, one(block(0, []byte("x\x0099999999999999999999999\x00"), sohSize)), ErrTooLarge, nil, "C CAN CAN"},
		{"size just above the limit", 1499, one(header("p.pkg", 1500)), ErrTooLarge, nil, "C CAN CAN"},
		{"transfer stops mid-way", 1 << 20, one(header("p.pkg", 1500), blocks[0]), ErrTimeout, fileData[:1024],
			"C ACK C ACK NAK NAK NAK NAK NAK NAK NAK NAK NAK CAN CAN"},
		{"CAN CAN from the sender", 1 << 20, one(header("p.pkg", 1500), blocks[0], []byte{CAN, CAN}), ErrCanceled, fileData[:1024],
			"C ACK C ACK"},
		{"second file in the batch", 1 << 20, cat(one(header("p.pkg", 1500)), blocks, one(eot, eot, header("q.pkg", 10))), ErrSecondFile, fileData,
			okFile[:len(okFile)-4] + " CAN CAN"},
		{"EOT before the announced size", 1 << 20, one(header("p.pkg", 1500), blocks[0], eot, eot), ErrTruncated, fileData[:1024],
			"C ACK C ACK NAK CAN CAN"},
		{"more blocks than the size", 1 << 20, cat(one(header("p.pkg", 1024)), blocks), ErrOverrun, fileData[:1024],
			"C ACK C ACK CAN CAN"},
		{"block 0 without size", 1 << 20, one(block(0, []byte("p.pkg\x00"), sohSize)), ErrHeader, nil, "C CAN CAN"},
		{"silence before the first data block asks for CRC again", 1 << 20, cat(one(header("p.pkg", 1500), nil), blocks, tail), nil, fileData,
			"C ACK C C ACK ACK ACK ACK ACK NAK ACK C ACK"},
		{"escape sequence in the name", 1 << 20, one(header("\x1b[2Jp.pkg", 1500)), ErrHeader, nil, "C CAN CAN"},
		{"block 0 with a non-decimal size", 1 << 20, one(block(0, []byte("p.pkg\x00-5\x00"), sohSize)), ErrHeader, nil, "C CAN CAN"},
		{"data block before block 0 (XMODEM sender)", 1 << 20, one(blocks[0]), ErrSequence, nil, "C CAN CAN"},
		{"batch with no file", 1 << 20, one(end0), ErrNoFile, nil, "C ACK"},
		{"no sender at all", 1 << 20, nil, ErrTimeout, nil, ""},
		{"bad blocks without end", 1 << 20, cat(one(header("p.pkg", 1500)),
			func() (c [][]byte) {
				for range 12 {
					c = append(c, corrupt(blocks[0], 9), nil)
				}
				return c
			}()), ErrTooManyErrors, nil, "C ACK C NAK NAK NAK NAK NAK NAK NAK NAK NAK CAN CAN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{now: time.Unix(1_800_000_000, 0), chunks: tc.chunks}
			var out bytes.Buffer
			h, err := Receive(context.Background(), s, &out, Options{Limit: tc.limit, Now: s.Now})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Receive = %v, want %v (sent %s)", err, tc.wantErr, s.transcript())
			}
			if got := out.Bytes(); !bytes.Equal(got, tc.wantData) && !(len(got) == 0 && len(tc.wantData) == 0) {
				t.Errorf("wrote %d bytes, want %d", len(got), len(tc.wantData))
			}
			if tc.transcript != "" && s.transcript() != tc.transcript {
				t.Errorf("receiver sent %q\nwant          %q", s.transcript(), tc.transcript)
			}
			if err == nil && (h.Name == "" || h.Size != int64(len(tc.wantData))) {
				t.Errorf("header %+v", h)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("store full") }

func TestReceiveWriterErrorCancels(t *testing.T) {
	s := &script{now: time.Unix(0, 0), chunks: cat(one(header("p.pkg", 1500)), fileBlocks())}
	_, err := Receive(context.Background(), s, failWriter{}, Options{Limit: 1 << 20, Now: s.Now})
	if err == nil || !strings.Contains(err.Error(), "store full") || !strings.HasSuffix(s.transcript(), "CAN CAN") {
		t.Errorf("Receive into a failing writer = %v, sent %q; want the write error and CAN CAN", err, s.transcript())
	}
}

func TestReceiveContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &script{now: time.Unix(0, 0)}
	if _, err := Receive(ctx, s, &bytes.Buffer{}, Options{Limit: 1, Now: s.Now}); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive(canceled ctx) = %v, want context.Canceled", err)
	}
}

func TestCRC16(t *testing.T) {
	// CRC-16/XMODEM check value (the CRC catalogue's "123456789").
	if got, want := CRC16([]byte("123456789")), uint16(0x31c3); got != want {
		t.Errorf("CRC16(123456789) = %#04x, want %#04x", got, want)
	}
}
