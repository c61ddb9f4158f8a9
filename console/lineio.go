package console

import (
	"errors"
	"io"
	"os"
	"time"
)

// errIdle is a read that waited its whole timeout.
var errIdle = errors.New("console: idle")

// port reads the line with timeouts, the way ymodem's receiver does: a
// read deadline (os.File, a pty) or a read timeout (go.bug.st/serial,
// where a timeout reads 0 bytes). The console never reads in the
// background, so that YMODEM gets every byte after `install`.
type port struct {
	rw  io.ReadWriter
	dl  interface{ SetReadDeadline(time.Time) error }
	to  interface{ SetReadTimeout(time.Duration) error }
	buf [256]byte
	r   int
	n   int
}

func newPort(rw io.ReadWriter) *port {
	p := &port{rw: rw}
	p.dl, _ = rw.(interface{ SetReadDeadline(time.Time) error })
	if p.dl == nil {
		p.to, _ = rw.(interface{ SetReadTimeout(time.Duration) error })
	}
	return p
}

// readByte returns the next byte, waiting at most d (0: forever).
func (p *port) readByte(d time.Duration) (byte, error) {
	for p.r == p.n {
		switch {
		case p.dl != nil:
			var t time.Time
			if d > 0 {
				t = time.Now().Add(d)
			}
			if err := p.dl.SetReadDeadline(t); err != nil {
				return 0, err
			}
		case p.to != nil:
			t := d
			if t <= 0 {
				t = -1 // go.bug.st/serial: NoTimeout
			}
			if err := p.to.SetReadTimeout(t); err != nil {
				return 0, err
			}
		}
		n, err := p.rw.Read(p.buf[:])
		if n > 0 {
			p.r, p.n = 0, n
			break
		}
		var te interface{ Timeout() bool }
		switch {
		case err == nil && p.to != nil:
			return 0, errIdle
		case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &te) && te.Timeout():
			return 0, errIdle
		case err != nil:
			return 0, err
		}
	}
	b := p.buf[p.r]
	p.r++
	return b, nil
}

// drop forgets buffered input (before a transfer, after a refused line).
func (p *port) drop() { p.r, p.n = 0, 0 }
