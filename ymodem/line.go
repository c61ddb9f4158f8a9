package ymodem

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// errSilence is a read that timed out: nothing came from the sender.
var errSilence = errors.New("ymodem: silence")

// line reads the sender's bytes with timeouts, through a buffer the size
// of one 1K block: nothing it holds is sized by the sender.
type line struct {
	rw   io.ReadWriter
	dl   interface{ SetReadDeadline(time.Time) error }
	to   interface{ SetReadTimeout(time.Duration) error }
	now  func() time.Time
	buf  [stxSize + overhead]byte
	r, n int
}

func newLine(rw io.ReadWriter, now func() time.Time) *line {
	l := &line{rw: rw, now: now}
	l.dl, _ = rw.(interface{ SetReadDeadline(time.Time) error })
	if l.dl == nil {
		l.to, _ = rw.(interface{ SetReadTimeout(time.Duration) error })
	}
	return l
}

// fill reads what the line has, waiting at most until deadline.
func (l *line) fill(deadline time.Time) error {
	wait := deadline.Sub(l.now())
	if wait <= 0 {
		return errSilence
	}
	switch {
	case l.dl != nil:
		if err := l.dl.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("ymodem: line: %w", err)
		}
	case l.to != nil:
		if err := l.to.SetReadTimeout(wait); err != nil {
			return fmt.Errorf("ymodem: line: %w", err)
		}
	}
	n, err := l.rw.Read(l.buf[:])
	if n > 0 {
		l.r, l.n = 0, n
		return nil
	}
	var te interface{ Timeout() bool }
	switch {
	case err == nil: // go.bug.st/serial: a timeout reads 0 bytes, no error
		return errSilence
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &te) && te.Timeout():
		return errSilence
	}
	return fmt.Errorf("ymodem: line: %w", err)
}

// readByte returns the next byte, waiting at most timeout for it.
func (l *line) readByte(timeout time.Duration) (byte, error) {
	if l.r == l.n {
		if err := l.fill(l.now().Add(timeout)); err != nil {
			return 0, err
		}
	}
	b := l.buf[l.r]
	l.r++
	return b, nil
}

// unread gives back the byte readByte returned last.
func (l *line) unread() { l.r-- }

// readFull fills p, waiting at most timeout for each piece.
func (l *line) readFull(p []byte, timeout time.Duration) error {
	for len(p) > 0 {
		if l.r == l.n {
			if err := l.fill(l.now().Add(timeout)); err != nil {
				return err
			}
		}
		c := copy(p, l.buf[l.r:l.n])
		l.r += c
		p = p[c:]
	}
	return nil
}

// purge discards what the sender sends until the line has been quiet for
// quiet, or for at most max in all (a line that never stops talking).
func (l *line) purge(quiet, max time.Duration) error {
	l.r, l.n = 0, 0
	end := l.now().Add(max)
	for l.now().Before(end) {
		err := l.fill(l.now().Add(quiet))
		if errors.Is(err, errSilence) {
			l.r, l.n = 0, 0
			return nil
		}
		if err != nil {
			return err
		}
		l.r, l.n = 0, 0
	}
	return nil
}

func (l *line) send(b ...byte) error {
	if _, err := l.rw.Write(b); err != nil {
		return fmt.Errorf("ymodem: line: %w", err)
	}
	return nil
}
