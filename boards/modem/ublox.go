package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"meterupd/boards/hw"
)

// UBlox is the FOAT dialect of u-blox SARA-R4/R5 modules (u-blox
// "SARA-R4 series AT commands manual" UBX-17003787, §14.1 +UFWINSTALL and
// §16.2 +UDWNFILE; "SARA-R5 series Firmware update with uFOTA, FOAT and
// EasyFlash" UBX-20033314):
//
//	AT+UDELFILE="<name>","FOAT"            remove an earlier upload: the
//	                                       module appends to an existing file
//	AT+UDWNFILE="<name>",<size>,"FOAT"     "> " prompt, <size> raw bytes, OK
//	AT+UFWINSTALL                          OK; the module resets and installs
//	(silent up to 20 minutes: no result codes, UART and USB unavailable)
//	AT+CGMR                                the revision
//
// The dialect gives no checksum of the upload (FOAT files can only be
// written or deleted, not listed or read); the module checks the package's
// own signature at install and comes back with its old firmware when it
// rejects it. After an install the module's settings (NVM, profiles) are
// the new firmware's factory values, so ModemConfirm provisions it again
// from FirmwareConfig (APN, Provision) before it reads the version.
type UBlox struct {
	Path   string
	Config Config
	FOAT   UBloxConfig
}

// UBloxConfig configures the FOAT dialect. The zero value works for a
// SARA-R4.
type UBloxConfig struct {
	FirmwareConfig
	// File is the update file's name (default "update.bin").
	File string
	// Install is the install command (default "AT+UFWINSTALL", SARA-R4).
	// SARA-R5 takes parameters (AT+UFWINSTALL=1,<baud> for the UART); its
	// board file sets them.
	Install string
}

var _ hw.ModemFirmware = (*UBlox)(nil)

// uBloxDataIdle is how long the module waits for the next byte of
// +UDWNFILE before it stops the command (SARA-R4 manual, 16.2: 20 s).
const uBloxDataIdle = 20 * time.Second

func (u *UBlox) port() *port {
	if u.FOAT.File == "" {
		u.FOAT.File = "update.bin"
	}
	if u.FOAT.Install == "" {
		u.FOAT.Install = "AT+UFWINSTALL"
	}
	u.FOAT.defaults(25 * time.Minute)
	log := u.Config.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &port{path: u.Path, cfg: u.Config, fw: &u.FOAT.FirmwareConfig, log: log}
}

// ModemVersion reports AT+CGMR.
func (u *UBlox) ModemVersion(ctx context.Context) (string, error) {
	var v string
	err := u.port().with(ctx, func(m *Modem) (err error) { v, err = m.FirmwareVersion(ctx); return err })
	return v, err
}

// ModemUpload deletes an earlier (or partial) file and writes the new one.
func (u *UBlox) ModemUpload(ctx context.Context, image io.Reader, size int64) error {
	p := u.port()
	name := u.FOAT.File
	err := p.with(ctx, func(m *Modem) error {
		_, err := m.Command(ctx, fmt.Sprintf("AT+UDELFILE=%q,\"FOAT\"", name))
		if errors.Is(err, ErrCommandFailed) {
			// No such file: what a first upload finds.
			p.log.Debug("no earlier update file", slog.Any("err", err))
			err = nil
		}
		return err
	})
	if err != nil {
		return err
	}
	cmd := fmt.Sprintf("AT+UDWNFILE=%q,%d,\"FOAT\"", name, size)
	_, err = p.dataSession(ctx, cmd, image, size, false, uBloxDataIdle, "upload")
	return err
}

// ModemStart gives the install command. The module answers OK and resets.
func (u *UBlox) ModemStart(ctx context.Context) error {
	p := u.port()
	return p.with(ctx, func(m *Modem) error {
		_, err := m.Command(ctx, u.FOAT.Install)
		if errors.Is(err, ErrClosed) {
			// The module reset before its OK reached us: ModemWait and
			// the version tell whether it installs.
			p.log.Info("port gone after the install command", slog.Any("err", err))
			return nil
		}
		return err
	})
}

// ModemWait waits, up to InstallTimeout, for the module to answer AT
// again. It gives no sign while it installs.
func (u *UBlox) ModemWait(ctx context.Context) error {
	p := u.port()
	m, err := p.open(ctx, u.FOAT.InstallTimeout, u.Config)
	if err != nil {
		return err
	}
	return m.Close()
}

// ModemConfirm provisions the module again (Open has set echo and error
// format; then the APN and the board's commands) and reports AT+CGMR.
func (u *UBlox) ModemConfirm(ctx context.Context) (string, error) {
	var v string
	err := u.port().with(ctx, func(m *Modem) (err error) {
		if err := provision(ctx, m, u.FOAT.FirmwareConfig); err != nil {
			return err
		}
		v, err = m.FirmwareVersion(ctx)
		return err
	})
	return v, err
}
