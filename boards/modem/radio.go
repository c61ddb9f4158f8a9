package modem

import (
	"context"
	"errors"
	"sync"
	"time"

	"meterupd/boards/hw"
)

// Radio is a module on a device path, opened for each call and closed
// after it, so that nothing holds the UART between a board's health checks.
// It is the board's hw.Radio: Linked asks the module and remembers the
// answer, RadioStatus returns that answer without I/O. A board file keeps
// one:
//
//	radio := &modem.Radio{Path: "/dev/ttymxc1", Config: modem.Config{Logger: log}}
//
// Now is the clock of the Checked stamp (time.Now when nil).
type Radio struct {
	Path   string
	Config Config
	Now    func() time.Time

	mu   sync.Mutex
	last hw.RadioStatus
	ok   bool
}

var _ hw.Radio = (*Radio)(nil)

func (r *Radio) with(ctx context.Context, f func(*Modem) error) error {
	m, err := Open(ctx, r.Path, r.Config)
	if err != nil {
		return err
	}
	err = f(m)
	if cerr := m.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Linked asks the module for its status and whether it links (Modem.Status
// and Modem.Linked, on one opening of the port), and remembers the answer.
func (r *Radio) Linked(ctx context.Context) error {
	var st Status
	var linked error
	err := r.with(ctx, func(m *Modem) (err error) {
		if st, err = m.Status(ctx); err != nil {
			return err
		}
		linked = m.Linked(ctx)
		return nil
	})
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		r.last.Error, r.last.Checked, r.ok = err.Error(), now(), true
		return err
	}
	r.last = hw.RadioStatus{Manufacturer: st.Identity.Manufacturer, Model: st.Identity.Model, Firmware: st.Firmware,
		Registered: st.Registration.Registered(), SignalDBm: st.SignalDBm, Checked: now()}
	if linked != nil {
		r.last.Error = linked.Error()
	}
	r.ok = true
	return linked
}

// RadioStatus returns the answer of the last Linked, without I/O.
func (r *Radio) RadioStatus() (hw.RadioStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.ok
}
