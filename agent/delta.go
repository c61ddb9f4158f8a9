package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"meterupd/boards/hw"
	"meterupd/delta"
)

// slotBlocks writes delta output into the idle slot, one erase block at a
// time, each read back (delta.BlockWriter).
type slotBlocks struct {
	a *Agent
	f hw.Flash
}

func (w slotBlocks) WriteBlock(i int64, p []byte) error { return w.a.writeBlock(w.f, i, p) }

// installDelta applies the item's delta chain to the running set (the
// only stored source) and writes the result into the idle slot in one
// pass. After each block the delta engine's checkpoint goes into the
// journal, so a power cut resumes at the next block without writing a
// verified block again or needing the payloads a second time.
func (a *Agent) installDelta(ctx context.Context, r *Record, f hw.Flash) error {
	u := r.Update
	src, err := a.b.Slot(u.From)
	if err != nil {
		return fmt.Errorf("agent: slot %s: %w", u.From, err)
	}
	var patches []io.Reader
	for _, p := range u.Item.Payloads {
		pf, err := os.Open(p)
		if err != nil {
			return a.abandon(r, fmt.Sprintf("the payload cannot be read from the package store: %v", err))
		}
		defer pf.Close()
		patches = append(patches, pf)
	}
	opt := delta.Options{
		BlockSize: f.EraseSize(),
		MaxSize:   f.Size(),
		Resume:    u.Chk,
		Logger:    a.log,
		Checkpoint: func(cp []byte) error {
			var c delta.Checkpoint
			if err := c.UnmarshalBinary(cp); err != nil {
				return err
			}
			next := a.rec.clone()
			next.Update.Chk = append([]byte(nil), cp...)
			next.Update.Written = c.Next * f.EraseSize()
			return a.commit(next)
		},
	}
	res, err := delta.Apply(ctx, src, u.Item.SourceSize, patches, slotBlocks{a: a, f: f}, opt)
	if err != nil {
		var ce *delta.CorruptError
		switch {
		case errors.As(err, &ce), errors.Is(err, delta.ErrSourceMismatch), errors.Is(err, delta.ErrTargetMismatch),
			errors.Is(err, delta.ErrTooLarge), errors.Is(err, delta.ErrCheckpoint), errors.Is(err, delta.ErrChainUnsupported),
			errors.Is(err, delta.ErrUnknownFormat), a.fatalFlash(err):
			return a.abandon(a.rec.clone(), fmt.Sprintf("applying the delta to slot %s failed: %v", u.Target, err))
		}
		return err
	}
	r = a.rec.clone()
	r.Update.Item.Size = res.Size
	r.Update.Written = res.Size
	return a.verifyInstalled(ctx, r, f)
}

var _ delta.BlockWriter = slotBlocks{}
