package modem

import (
	"context"
	"io"
)

// Radio is a module on a device path, opened for each call and closed
// after it, so that nothing holds the UART between a board's health checks
// and status queries. A board file keeps one:
//
//	radio := modem.Radio{Path: "/dev/ttymxc1", Config: modem.Config{Logger: log}}
//
// Radio is a FirmwareUpdater for the module (with ATUpdater's transfer).
type Radio struct {
	Path    string
	Config  Config
	Updater UpdaterConfig
}

var _ FirmwareUpdater = Radio{}

func (r Radio) with(ctx context.Context, f func(*Modem) error) error {
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

// Linked is Modem.Linked: the health check "the radio links".
func (r Radio) Linked(ctx context.Context) error {
	return r.with(ctx, func(m *Modem) error { return m.Linked(ctx) })
}

// Status is Modem.Status.
func (r Radio) Status(ctx context.Context) (Status, error) {
	var s Status
	err := r.with(ctx, func(m *Modem) (err error) { s, err = m.Status(ctx); return err })
	return s, err
}

// Version reports the module's firmware revision.
func (r Radio) Version(ctx context.Context) (string, error) {
	var v string
	err := r.with(ctx, func(m *Modem) (err error) { v, err = m.FirmwareVersion(ctx); return err })
	return v, err
}

// Update transfers and activates firmware with an ATUpdater.
func (r Radio) Update(ctx context.Context, rd io.Reader, size int64) error {
	return r.with(ctx, func(m *Modem) error { return NewATUpdater(m, r.Updater).Update(ctx, rd, size) })
}
