package ymodem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors of Receive. After any of them the caller discards what was
// written: the transfer did not end cleanly.
var (
	ErrCanceled      = errors.New("ymodem: transfer canceled by the sender")
	ErrTooLarge      = errors.New("ymodem: file larger than allowed")
	ErrSecondFile    = errors.New("ymodem: more than one file in the batch (nothing from it is to be installed)")
	ErrTimeout       = errors.New("ymodem: sender silent")
	ErrTooManyErrors = errors.New("ymodem: too many bad blocks in a row")
	ErrSequence      = errors.New("ymodem: block out of sequence")
	ErrHeader        = errors.New("ymodem: malformed block 0")
	ErrTruncated     = errors.New("ymodem: file ended before its announced size")
	ErrOverrun       = errors.New("ymodem: more data than the announced size")
	ErrNoFile        = errors.New("ymodem: batch ended without a file")
)

// Options tune Receive. Limit is required; the zero value of every other
// field takes the default in its comment.
type Options struct {
	Limit         int64         // largest file accepted (the store's free space); required
	Timeout       time.Duration // silence before a NAK, and within a block; default 10 s
	StartInterval time.Duration // between two 'C' while waiting for the sender; default 3 s
	StartTimeout  time.Duration // waiting for the sender to start; default 60 s
	Gap           time.Duration // longest silence within a block (more: bytes were lost), and the quiet line awaited before a NAK; default 1 s
	MaxErrors     int           // bad blocks or silences in a row before giving up; default 10
	Now           func() time.Time
	// Progress, when set, is called after block 0 and after every data
	// block written.
	Progress func(Progress)
}

// Progress is the state of a transfer.
type Progress struct {
	Name     string
	Size     int64 // announced
	Received int64 // written so far
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.StartInterval, 3*time.Second)
	def(&o.StartTimeout, 60*time.Second)
	def(&o.Gap, time.Second)
	if o.MaxErrors <= 0 {
		o.MaxErrors = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// packet is what came off the line: a block or an EOT.
type packet struct {
	eot  bool
	num  byte
	data []byte
}

type receiver struct {
	l    *line
	w    io.Writer
	opt  Options
	hdr  Header
	got  int64
	errs int
	blk  [stxSize + overhead]byte
}

// Receive receives one file from a YMODEM sender on rw and writes its
// bytes (padding cut to the announced size) to w. It returns block 0's
// header once the batch has ended cleanly. See the package comment for the
// rules; on error the caller discards what was written to w.
func Receive(ctx context.Context, rw io.ReadWriter, w io.Writer, opt Options) (Header, error) {
	if opt.Limit <= 0 {
		return Header{}, errors.New("ymodem: Options.Limit must be positive")
	}
	opt.defaults()
	r := &receiver{l: newLine(rw, opt.Now), w: w, opt: opt}
	err := r.run(ctx)
	if err != nil {
		if !errors.Is(err, ErrCanceled) && !errors.Is(err, ErrNoFile) {
			r.l.send(CAN, CAN) // best effort: the line may be gone
		}
		return Header{}, err
	}
	return r.hdr, nil
}

// next reads the next packet, skipping noise, waiting at most timeout for
// its first byte. Silence is errSilence, a broken block errBadBlock (the
// line is then purged), CAN CAN ErrCanceled.
func (r *receiver) next(timeout time.Duration) (packet, error) {
	deadline := r.opt.Now().Add(timeout)
	for {
		wait := deadline.Sub(r.opt.Now())
		if wait <= 0 {
			return packet{}, errSilence
		}
		c, err := r.l.readByte(wait)
		if err != nil {
			return packet{}, err
		}
		switch c {
		case SOH, STX:
			size := sohSize
			if c == STX {
				size = stxSize
			}
			b := r.blk[:size+overhead]
			b[0] = c
			if err := r.l.readFull(b[1:], r.opt.Gap); err != nil && !errors.Is(err, errSilence) {
				return packet{}, err
			} else if err != nil {
				return packet{}, fmt.Errorf("%w: cut short", errBadBlock)
			}
			num, data, err := ParseBlock(b)
			if err != nil {
				if perr := r.l.purge(r.opt.Gap, r.opt.Timeout); perr != nil {
					return packet{}, perr
				}
				return packet{}, err
			}
			return packet{num: num, data: data}, nil
		case EOT:
			return packet{eot: true}, nil
		case CAN:
			c2, err := r.l.readByte(r.opt.Gap)
			if err == nil && c2 == CAN {
				return packet{}, ErrCanceled
			}
			if err == nil {
				r.l.unread() // a lone CAN (ZMODEM's ZDLE): noise
			} else if !errors.Is(err, errSilence) {
				return packet{}, err
			}
		default:
			// Noise: a plain sz's "rz\r" and ZRQINIT header, line garbage.
		}
	}
}

// strike counts one bad block or silence; too many in a row end the
// transfer with the error of the last one.
func (r *receiver) strike(err error) error {
	r.errs++
	if r.errs < r.opt.MaxErrors {
		return nil
	}
	if errors.Is(err, errSilence) {
		return fmt.Errorf("%w: %d times in a row", ErrTimeout, r.errs)
	}
	return fmt.Errorf("%w: %d, last: %v", ErrTooManyErrors, r.errs, err)
}

func (r *receiver) run(ctx context.Context) error {
	if err := r.header(ctx); err != nil {
		return err
	}
	if err := r.data(ctx); err != nil {
		return err
	}
	return r.batchEnd(ctx)
}

// header waits for block 0, sending 'C' until the sender starts.
func (r *receiver) header(ctx context.Context) error {
	start := r.opt.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.opt.Now().Sub(start) >= r.opt.StartTimeout {
			return fmt.Errorf("%w: no sender after %v", ErrTimeout, r.opt.StartTimeout)
		}
		if err := r.l.send(CRCReq); err != nil {
			return err
		}
		p, err := r.next(r.opt.StartInterval)
		switch {
		case errors.Is(err, errSilence):
			continue
		case errors.Is(err, errBadBlock):
			if err := r.strike(err); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case p.eot:
			continue // a sender finishing an earlier transfer: not ours
		case p.num != 0:
			return fmt.Errorf("%w: block %d before block 0 (an XMODEM sender?)", ErrSequence, p.num)
		}
		h, ok, err := ParseHeader(p.data)
		if err != nil {
			return err
		}
		if !ok {
			r.l.send(ACK)
			return ErrNoFile
		}
		if h.Size > r.opt.Limit {
			return fmt.Errorf("%w: %q announces %d bytes, limit %d", ErrTooLarge, h.Name, h.Size, r.opt.Limit)
		}
		r.hdr = h
		r.progress()
		return r.l.send(ACK)
	}
}

// data receives the file's blocks up to the EOT.
func (r *receiver) data(ctx context.Context) error {
	r.errs = 0
	expect := byte(1)
	blocks := 0 // data blocks accepted
	eots := 0
	if err := r.l.send(CRCReq); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := r.next(r.opt.Timeout)
		switch {
		case errors.Is(err, errSilence), errors.Is(err, errBadBlock):
			if err := r.strike(err); err != nil {
				return err
			}
			// Before the first data block, silence means our 'C' was
			// lost: ask for CRC mode again rather than NAK, which some
			// senders take for checksum mode.
			ask := byte(NAK)
			if blocks == 0 && errors.Is(err, errSilence) {
				ask = CRCReq
			}
			if err := r.l.send(ask); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case p.eot:
			// lrzsz's sz resends EOT until it is ACKed: NAK the first,
			// so a stray EOT byte on a noisy line cannot end the file.
			if eots == 0 {
				eots++
				if err := r.l.send(NAK); err != nil {
					return err
				}
				continue
			}
			if r.got < r.hdr.Size {
				return fmt.Errorf("%w: %d of %d bytes", ErrTruncated, r.got, r.hdr.Size)
			}
			return r.l.send(ACK)
		}
		eots = 0
		switch p.num {
		case expect:
			if err := r.write(p.data); err != nil {
				return err
			}
			expect++
			blocks++
			r.errs = 0
			if err := r.l.send(ACK); err != nil {
				return err
			}
		case expect - 1:
			// Our ACK was lost and the sender repeats the block: ACK it
			// again, do not write it twice. For block 0 the sender also
			// waits for the 'C' again.
			if err := r.strike(fmt.Errorf("%w: block %d repeated", errBadBlock, p.num)); err != nil {
				return err
			}
			ack := []byte{ACK}
			if blocks == 0 {
				ack = append(ack, CRCReq)
			}
			if err := r.l.send(ack...); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: block %d, expected %d", ErrSequence, p.num, expect)
		}
	}
}

func (r *receiver) write(data []byte) error {
	left := r.hdr.Size - r.got
	if left <= 0 {
		return fmt.Errorf("%w: %d bytes announced", ErrOverrun, r.hdr.Size)
	}
	if int64(len(data)) > left {
		data = data[:left] // the last block's padding
	}
	n, err := r.w.Write(data)
	r.got += int64(n)
	if err != nil {
		return fmt.Errorf("ymodem: write: %w", err)
	}
	r.progress()
	return nil
}

func (r *receiver) progress() {
	if r.opt.Progress != nil {
		r.opt.Progress(Progress{Name: r.hdr.Name, Size: r.hdr.Size, Received: r.got})
	}
}

// batchEnd asks for the next block 0: empty ends the batch; a second
// file is refused.
func (r *receiver) batchEnd(ctx context.Context) error {
	r.errs = 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.l.send(CRCReq); err != nil {
			return err
		}
		p, err := r.next(r.opt.Timeout)
		switch {
		case errors.Is(err, errSilence), errors.Is(err, errBadBlock):
			if err := r.strike(err); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case p.eot:
			// Our ACK of the EOT was lost.
			if err := r.l.send(ACK); err != nil {
				return err
			}
			continue
		case p.num != 0:
			return fmt.Errorf("%w: block %d after the end of %q", ErrSequence, p.num, r.hdr.Name)
		}
		h, ok, err := ParseHeader(p.data)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: %q after %q", ErrSecondFile, h.Name, r.hdr.Name)
		}
		return r.l.send(ACK)
	}
}
