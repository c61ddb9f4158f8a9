package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"meterupd/boards/hw"
	"meterupd/slots"
)

// DefaultHealth is the post-switch health check set: the set that runs is
// the one expected, its image in flash still has its digest (data not
// corrupt), and, where the board has one, the metrology process produces
// readings. Later issues add the radio link and required files.
func DefaultHealth(b hw.Board, _ *Record) []HealthCheck {
	hc := []HealthCheck{
		{Name: "booted-slot", Check: func(_ context.Context, s hw.Slot, _ SlotInfo) error {
			got, err := b.Boot().Booted()
			if err != nil {
				return err
			}
			if got != s {
				return fmt.Errorf("the bootloader started %s, not %s", got, s)
			}
			return nil
		}},
		{Name: "image-digest", Check: func(_ context.Context, s hw.Slot, want SlotInfo) error {
			if want.SHA256 == "" {
				return nil
			}
			f, err := b.Slot(s)
			if err != nil {
				return err
			}
			sum, err := slots.Hash(f, want.Size)
			if err != nil {
				return err
			}
			if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
				return fmt.Errorf("slot %s reads SHA-256 %s, expected %s", s, got, want.SHA256)
			}
			return nil
		}},
	}
	if r, ok := b.(hw.Radio); ok {
		hc = append(hc, HealthCheck{Name: "radio", Environmental: true, Check: func(ctx context.Context, _ hw.Slot, _ SlotInfo) error {
			ctx, cancel := context.WithTimeout(ctx, radioTimeout)
			defer cancel()
			err := r.Linked(ctx)
			if errors.Is(err, errors.ErrUnsupported) {
				return nil // this node has no radio
			}
			return err
		}})
	}
	if m, ok := b.(hw.Metrology); ok {
		hc = append(hc, HealthCheck{Name: "metrology", Check: func(context.Context, hw.Slot, SlotInfo) error {
			return m.Readings()
		}})
	}
	return hc
}

// radioTimeout bounds how long a health check or status waits for the
// modem: a radio that does not answer in this time is not linked.
const radioTimeout = 5 * time.Second

// HealthError names the check that failed.
type HealthError struct {
	Check string
	Err   error
}

func (e *HealthError) Error() string { return e.Check + ": " + e.Err.Error() }
func (e *HealthError) Unwrap() error { return e.Err }

// health runs every check on the running set s. With trial false (the
// previous, known-good set) environmental failures are only logged.
func (a *Agent) health(ctx context.Context, s hw.Slot, want SlotInfo, trial bool) error {
	var errs []error
	for _, c := range a.opt.Health {
		err := c.Check(ctx, s, want)
		switch {
		case err == nil:
		case c.Environmental && !trial:
			a.log.Warn("health check failed; not the set's fault", slog.String("check", c.Name), slog.String("slot", string(s)), slog.Any("err", err))
		default:
			errs = append(errs, &HealthError{Check: c.Name, Err: err})
		}
	}
	return errors.Join(errs...)
}
