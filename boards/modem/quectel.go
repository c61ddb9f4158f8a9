package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"meterupd/boards/hw"
)

// Quectel is the DFOTA dialect of Quectel's BG95/BG96 family (Quectel
// "BG96 DFOTA User Guide", "BG96 FILE AT Commands Manual"; the BG95
// documents are the same for these commands):
//
//	AT+QFLST="<file>"               is an earlier upload there?
//	AT+QFDEL="<file>"               remove it
//	AT+QFUPL="<file>",<size>,<timeout>,1
//	  CONNECT, <size> raw bytes; in acknowledged mode the module sends
//	  one 'A' after every 1024 bytes and the host waits for it
//	  +QFUPL: <size>,<checksum>     16-bit XOR of the data, in hex
//	AT+QFOTADL="<path>"             OK, then the module patches itself:
//	  +QIND: "FOTA","START"
//	  +QIND: "FOTA","UPDATING",<pct>
//	  +QIND: "FOTA","RESTORE",<pct>
//	  +QIND: "FOTA","END",<err>     0: success; else it keeps its firmware
//	  (restart) RDY
//	AT+QGMR                         the full revision
//
// The module keeps its settings across the update, so ModemConfirm only
// runs FirmwareConfig.Provision when a board asks for it.
type Quectel struct {
	// Path is the AT port's device path.
	Path   string
	Config Config
	FOTA   QuectelConfig

	live *Modem      // the dialogue that gave AT+QFOTADL, for its URCs
	urcs chan string // +QIND lines of live
}

// QuectelConfig configures the DFOTA dialect. The zero value works for a
// BG95.
type QuectelConfig struct {
	FirmwareConfig
	// File is the update file's name for AT+QFUPL/QFLST/QFDEL
	// (default "UFS:update.zip").
	File string
	// FOTAPath is AT+QFOTADL's argument for that file (default
	// "/usrdata/UFS/update.zip"). Older BG96 firmware takes the fixed
	// /fota/update.zip (BG96 DFOTA User Guide); a board file for it says so.
	FOTAPath string
	// DataTimeout is AT+QFUPL's <timeout> in seconds: the module gives the
	// upload up when no byte comes for that long (default 5, the manual's).
	DataTimeout int
}

var _ hw.ModemFirmware = (*Quectel)(nil)

const cmeFileNotFound = 405 // Quectel file error: file not found

func (q *Quectel) port() *port {
	if q.FOTA.File == "" {
		q.FOTA.File = "UFS:update.zip"
	}
	if q.FOTA.FOTAPath == "" {
		q.FOTA.FOTAPath = "/usrdata/UFS/update.zip"
	}
	if q.FOTA.DataTimeout <= 0 {
		q.FOTA.DataTimeout = 5
	}
	q.FOTA.defaults(10 * time.Minute)
	log := q.Config.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &port{path: q.Path, cfg: q.Config, fw: &q.FOTA.FirmwareConfig, log: log}
}

// ModemVersion reports AT+QGMR's revision.
func (q *Quectel) ModemVersion(ctx context.Context) (string, error) {
	var v string
	err := q.port().with(ctx, func(m *Modem) (err error) { v, err = qgmr(ctx, m); return err })
	return v, err
}

func qgmr(ctx context.Context, m *Modem) (string, error) {
	lines, err := m.Command(ctx, "AT+QGMR")
	if err != nil {
		return "", err
	}
	v, err := ParseCGMR(lines)
	if err != nil {
		return "", fmt.Errorf("AT+QGMR: %w", err)
	}
	return v, nil
}

// ModemUpload removes an earlier upload and uploads the file in
// acknowledged mode, checking the module's size and checksum. On a
// mismatch the file is removed and the error wraps ErrChecksum.
func (q *Quectel) ModemUpload(ctx context.Context, image io.Reader, size int64) error {
	p := q.port()
	file := q.FOTA.File
	if err := p.with(ctx, func(m *Modem) error { return q.remove(ctx, m, file) }); err != nil {
		return err
	}
	var sum Checksum16
	cmd := fmt.Sprintf("AT+QFUPL=%q,%d,%d,1", file, size, q.FOTA.DataTimeout)
	lines, err := p.dataSession(ctx, cmd, io.TeeReader(image, &sum), size, true, time.Duration(q.FOTA.DataTimeout)*time.Second, "upload")
	if err != nil {
		return err
	}
	var gotSize int64 = -1
	var got uint16
	for _, l := range lines {
		if strings.HasPrefix(l, "+QFUPL:") {
			if gotSize, got, err = ParseQFUPL(l); err != nil {
				return err
			}
		}
	}
	if gotSize < 0 {
		return fmt.Errorf("%s: %w: no +QFUPL line", cmd, ErrSyntax)
	}
	if gotSize != size || got != sum.Sum() {
		err := fmt.Errorf("%w: module has %d bytes, checksum %04x; sent %d, %04x", ErrChecksum, gotSize, got, size, sum.Sum())
		if derr := p.with(ctx, func(m *Modem) error { return q.remove(ctx, m, file) }); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// remove deletes file when AT+QFLST lists it.
func (q *Quectel) remove(ctx context.Context, m *Modem, file string) error {
	lines, err := m.Command(ctx, fmt.Sprintf("AT+QFLST=%q", file))
	var cme *CMEError
	switch {
	case errors.As(err, &cme) && cme.Code == cmeFileNotFound:
		return nil
	case err != nil:
		return err
	}
	found := false
	for _, l := range lines {
		if v, ok := cutLabel(l, "+QFLST:"); ok {
			name, _, _ := strings.Cut(v, ",")
			found = found || strings.Trim(name, `"`) == file
		}
	}
	if !found {
		return nil
	}
	_, err = m.Command(ctx, fmt.Sprintf("AT+QFDEL=%q", file))
	return err
}

// ModemStart gives AT+QFOTADL and keeps the dialogue open to follow the
// module's +QIND URCs in ModemWait.
func (q *Quectel) ModemStart(ctx context.Context) error {
	q.closeLive()
	p := q.port()
	urcs := make(chan string, 128)
	cfg := q.Config
	cfg.OnURC = func(u URC) {
		if u.Name == "+QIND" || u.Line == "RDY" {
			select {
			case urcs <- u.Line:
			default:
			}
		}
	}
	m, err := p.open(ctx, q.FOTA.ReadyTimeout, cfg)
	if err != nil {
		return err
	}
	if _, err := m.Command(ctx, fmt.Sprintf("AT+QFOTADL=%q", q.FOTA.FOTAPath)); err != nil {
		m.Close()
		if errors.Is(err, ErrClosed) {
			// The module restarted into its update (a USB port vanishes)
			// before its OK reached us: ModemWait and the version tell
			// whether it installs (seen by the power-cut suite's multi
			// scenario under load).
			p.log.Info("port gone after the install command", slog.Any("err", err))
			return nil
		}
		return err
	}
	q.live, q.urcs = m, urcs
	return nil
}

func (q *Quectel) closeLive() {
	if q.live != nil {
		q.live.Close()
		q.live, q.urcs = nil, nil
	}
}

// ModemWait follows the update's URCs to END and waits for the module's
// restart (RDY, or its port gone and back answering AT). After a power cut
// (no ModemStart in this process) it waits for the module to answer: a
// module cut while it restored finishes that first.
func (q *Quectel) ModemWait(ctx context.Context) error {
	p := q.port()
	clk := q.FOTA.Clock
	deadline := clk.After(q.FOTA.InstallTimeout)
	start := clk.Now()
	if m := q.live; m != nil {
		defer q.closeLive()
		ended := false
	follow:
		for {
			select {
			case line := <-q.urcs:
				if line == "RDY" {
					if ended {
						return nil
					}
					continue
				}
				ev, err := ParseQIND(line)
				if err != nil || !ev.FOTA() {
					continue
				}
				p.log.Debug("fota", slog.String("stage", ev.Stage), slog.Int("value", ev.Value))
				switch ev.Stage {
				case "UPDATING", "RESTORE":
					q.FOTA.progress(strings.ToLower(ev.Stage), ev.Value)
				case "END":
					if ev.Value != 0 {
						return &FOTAError{Code: ev.Value}
					}
					ended = true
				}
			case <-m.readerDone:
				break follow // the module restarts: its port is gone
			case <-deadline:
				return fmt.Errorf("%w: no RDY within %v", ErrNotReady, q.FOTA.InstallTimeout)
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}
	left := q.FOTA.InstallTimeout - clk.Now().Sub(start)
	if left <= 0 {
		return fmt.Errorf("%w: no RDY within %v", ErrNotReady, q.FOTA.InstallTimeout)
	}
	m, err := p.open(ctx, left, q.Config)
	if err != nil {
		return err
	}
	return m.Close()
}

// ModemConfirm runs the board's provisioning commands, if any, and
// reports AT+QGMR.
func (q *Quectel) ModemConfirm(ctx context.Context) (string, error) {
	var v string
	err := q.port().with(ctx, func(m *Modem) (err error) {
		if err := provision(ctx, m, q.FOTA.FirmwareConfig); err != nil {
			return err
		}
		v, err = qgmr(ctx, m)
		return err
	})
	return v, err
}

// provision runs the configuration a module needs after an update.
func provision(ctx context.Context, m *Modem, c FirmwareConfig) error {
	if c.APN != "" {
		if _, err := m.Command(ctx, fmt.Sprintf("AT+CGDCONT=1,%q,%q", c.pdpType(), c.APN)); err != nil {
			return fmt.Errorf("modem: provision APN: %w", err)
		}
	}
	for _, cmd := range c.Provision {
		if _, err := m.CommandTimeout(ctx, cmd, 10*time.Second); err != nil {
			return fmt.Errorf("modem: provision: %w", err)
		}
	}
	return nil
}

// Checksum16 is AT+QFUPL's checksum: the XOR of the data's 16-bit
// big-endian words; an odd last byte is the high byte of a word whose low
// byte is 0 (BG96 FILE AT Commands Manual, AT+QFUPL note 2). It is an
// io.Writer, so the data can be summed as it streams.
type Checksum16 struct {
	sum  uint16
	odd  bool
	high byte
}

func (c *Checksum16) Write(p []byte) (int, error) {
	for _, b := range p {
		if c.odd {
			c.sum ^= uint16(c.high)<<8 | uint16(b)
		} else {
			c.high = b
		}
		c.odd = !c.odd
	}
	return len(p), nil
}

// Sum is the checksum of what was written.
func (c *Checksum16) Sum() uint16 {
	if c.odd {
		return c.sum ^ uint16(c.high)<<8
	}
	return c.sum
}

// MaxUpload bounds a size in the module's answers (the modules' file
// systems are a few MB).
const MaxUpload = 1 << 30

// ParseQFUPL parses "+QFUPL: <size>,<checksum>" (checksum in hex).
func ParseQFUPL(line string) (size int64, sum uint16, err error) {
	f, err := params(line, "+QFUPL:")
	if err != nil {
		return 0, 0, err
	}
	if len(f) != 2 || f[0].quoted || f[1].quoted {
		return 0, 0, &SyntaxError{Line: line, Offset: len(line), Msg: "want <size>,<checksum>"}
	}
	n, err := strconv.ParseInt(f[0].s, 10, 64)
	if err != nil || n < 0 || n > MaxUpload || f[0].s[0] == '+' {
		return 0, 0, &SyntaxError{Line: line, Offset: len("+QFUPL:"), Msg: "bad size"}
	}
	c, err := strconv.ParseUint(f[1].s, 16, 16)
	if err != nil || f[1].s[0] == '+' {
		return 0, 0, &SyntaxError{Line: line, Offset: len("+QFUPL:"), Msg: "bad checksum"}
	}
	return n, uint16(c), nil
}

// FormatQFUPL is the line ParseQFUPL parses.
func FormatQFUPL(size int64, sum uint16) string { return fmt.Sprintf("+QFUPL: %d,%x", size, sum) }

// QIND is one +QIND URC: "+QIND: "<kind>","<stage>"[,<value>]".
// Quectel's FOTA URCs have kind "FOTA" and stage START, UPDATING (value:
// percent), RESTORE (percent) or END (value: 0 or an error code); the
// percent may carry a '%' sign (BG96 DFOTA User Guide, forced upgrade).
type QIND struct {
	Kind  string
	Stage string
	Value int // -1 when absent
}

// FOTA reports whether q is a DFOTA progress URC.
func (q QIND) FOTA() bool { return q.Kind == "FOTA" }

// ParseQIND parses a +QIND URC. Stages are free text (the module sends
// "Last upgrade was not finished,continue upgrade" too, a comma inside
// the quotes).
func ParseQIND(line string) (QIND, error) {
	f, err := params(line, "+QIND:")
	if err != nil {
		return QIND{}, err
	}
	if len(f) < 1 || len(f) > 3 || !f[0].quoted {
		return QIND{}, &SyntaxError{Line: line, Offset: len("+QIND:"), Msg: "want \"<kind>\"[,…]"}
	}
	q := QIND{Kind: f[0].s, Value: -1}
	if len(f) >= 2 {
		if !f[1].quoted {
			return QIND{}, &SyntaxError{Line: line, Offset: len("+QIND:"), Msg: "want a quoted stage"}
		}
		q.Stage = f[1].s
	}
	if len(f) == 3 {
		s := strings.TrimSuffix(f[2].s, "%")
		n, err := strconv.Atoi(s)
		if f[2].quoted || err != nil || n < 0 || n > 65535 || s == "" || s[0] == '+' {
			return QIND{}, &SyntaxError{Line: line, Offset: len("+QIND:"), Msg: "bad value"}
		}
		q.Value = n
	}
	return q, nil
}

// FormatQIND is the line ParseQIND parses.
func FormatQIND(q QIND) string {
	s := `+QIND: "` + q.Kind + `"`
	if q.Stage != "" || q.Value >= 0 {
		s += `,"` + q.Stage + `"`
	}
	if q.Value >= 0 {
		s += "," + strconv.Itoa(q.Value)
	}
	return s
}
