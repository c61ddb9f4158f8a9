package modem

import (
	"context"
	"fmt"
	"log/slog"

	"go.bug.st/serial"
)

// Open opens the module's AT port by device path (a UART such as
// /dev/ttymxc1, a USB modem's /dev/ttyUSB2) at Config.Baud, 8N1, raw, and
// runs Init.
//
// Modem-control lines are best effort: Open raises DTR and RTS (many
// modules hang up or sleep with DTR low) but a port without them, such as
// a pseudo-terminal or a 3-wire UART (the ioctls fail with ENOTTY), is
// not an error. Input that was waiting before Open is discarded.
func Open(ctx context.Context, path string, cfg Config) (*Modem, error) {
	baud := cfg.Baud
	if baud <= 0 {
		baud = DefaultBaud
	}
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("modem: open %s: %w", path, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := p.SetDTR(true); err != nil {
		log.Debug("no modem-control lines", slog.String("port", path), slog.String("line", "DTR"), slog.Any("err", err))
	}
	if err := p.SetRTS(true); err != nil {
		log.Debug("no modem-control lines", slog.String("port", path), slog.String("line", "RTS"), slog.Any("err", err))
	}
	if err := p.ResetInputBuffer(); err != nil {
		log.Debug("cannot flush input", slog.String("port", path), slog.Any("err", err))
	}
	m := New(serialPort{p}, cfg)
	if err := m.Init(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("modem: %s: %w", path, err)
	}
	return m, nil
}

// serialPort adapts serial.Port; its methods beyond io.ReadWriteCloser are
// found by type assertion (Lines).
type serialPort struct{ serial.Port }

// Lines is the state of the modem-control inputs.
type Lines struct {
	CTS bool `json:"cts"`
	DSR bool `json:"dsr"`
	RI  bool `json:"ri"`
	DCD bool `json:"dcd"`
}

// Lines reads the modem-control inputs. On a port without them it returns
// an error wrapping ErrNoControlLines; that is normal on many boards.
func (m *Modem) Lines() (Lines, error) {
	sp, ok := m.port.(serialPort)
	if !ok {
		return Lines{}, ErrNoControlLines
	}
	b, err := sp.GetModemStatusBits()
	if err != nil {
		return Lines{}, fmt.Errorf("%w: %w", ErrNoControlLines, err)
	}
	return Lines{CTS: b.CTS, DSR: b.DSR, RI: b.RI, DCD: b.DCD}, nil
}
