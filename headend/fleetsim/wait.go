package fleetsim

import (
	"context"
	"errors"
	"time"

	"meterupd/headend"
)

// Ended reports whether campaign c has ended: done, halted or cancelled,
// and none of its nodes still sent its job (the nodes a halted campaign
// had sent finish their update).
func Ended(c headend.Campaign, ts []headend.Target) bool {
	switch c.State {
	case headend.CampaignDone, headend.CampaignHalted, headend.CampaignCancelled:
	default:
		return false
	}
	for _, t := range ts {
		if t.State == headend.TargetSent {
			return false
		}
	}
	return true
}

// WaitEnded polls the store every interval until campaign id exists and
// has Ended, or ctx ends; tick, if set, is called before every poll.
func WaitEnded(ctx context.Context, s headend.Store, id string, every time.Duration, tick func()) (headend.Campaign, []headend.Target, error) {
	for {
		if tick != nil {
			tick()
		}
		c, err := s.Campaign(ctx, id)
		var ts []headend.Target
		if err == nil {
			ts, err = s.Targets(ctx, id)
		}
		if err != nil && !errors.Is(err, headend.ErrNotFound) {
			return c, nil, err
		}
		if err == nil && Ended(c, ts) {
			return c, ts, nil
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return c, nil, ctx.Err()
		case <-t.C:
		}
	}
}
