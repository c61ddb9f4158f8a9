package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"meterupd/boards/hw"
	"meterupd/slots"
	"meterupd/throttle"
)

// The I/O throttle (issue 13): the agent's bulk I/O — slot writes (full
// images and delta apply), slot hashing, payload copies into the package
// store — goes through one throttle.Throttle, so that the metrology
// process keeps the CPU and the flash. The board configures it
// (hw.ThrottleBoard); Options.Throttle overrides (tests, benchmarks); a
// board without the capability runs unthrottled.

// gateFunc adapts hw.IOThrottle.Closing to throttle.Gate.
type gateFunc func() bool

func (g gateFunc) Closing() bool { return g() }

// boardThrottle builds the board's throttle (nil: unthrottled).
func boardThrottle(b hw.Board) *throttle.Throttle {
	tb, ok := b.(hw.ThrottleBoard)
	if !ok {
		return nil
	}
	c, ok := tb.IOThrottle()
	if !ok {
		return nil
	}
	o := throttle.Options{BytesPerSec: c.BytesPerSec, YieldEvery: c.YieldEvery, Yield: c.Yield}
	if c.Closing != nil {
		o.Gate = gateFunc(c.Closing)
	}
	return throttle.New(o)
}

// pacedFlash is f with its programs and erases paced.
func (a *Agent) pacedFlash(ctx context.Context, f hw.Flash) hw.Flash {
	if a.opt.Throttle == nil {
		return f
	}
	return a.opt.Throttle.Flash(ctx, f)
}

// pacedWriter is w with its writes paced.
func (a *Agent) pacedWriter(ctx context.Context, w io.Writer) io.Writer {
	if a.opt.Throttle == nil {
		return w
	}
	return a.opt.Throttle.Writer(ctx, w)
}

// hashSlot is slots.Hash with the reads paced.
func (a *Agent) hashSlot(ctx context.Context, f hw.Flash, size int64) ([32]byte, error) {
	if a.opt.Throttle == nil {
		return slots.Hash(f, size)
	}
	if size < 0 || size > f.Size() {
		return [32]byte{}, fmt.Errorf("agent: hash %d bytes of a %d-byte slot", size, f.Size())
	}
	h := sha256.New()
	if _, err := io.Copy(h, a.opt.Throttle.Reader(ctx, io.NewSectionReader(f, 0, size))); err != nil {
		return [32]byte{}, fmt.Errorf("agent: hash slot: %w", err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
