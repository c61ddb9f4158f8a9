package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"go.bug.st/serial"

	"meterupd/boards/hw"
)

// Errors of the module firmware dialects (Quectel, UBlox).
var (
	// ErrChecksum: the module's checksum of an uploaded file differs from
	// the host's (or its size does); the file is removed.
	ErrChecksum = errors.New("modem: uploaded file checksum mismatch")
	// ErrNotReady: the module did not come back (no RDY, no answer to
	// AT) within its restart or install time.
	ErrNotReady = errors.New("modem: module did not come back")
	// ErrPortGone: the module's port vanished in the middle of a dialogue
	// (the module restarted or lost power).
	ErrPortGone = errors.New("modem: port gone")
	// ErrRefused: the module keeps coming back with its old version after
	// installing the file.
	ErrRefused = hw.ErrModemRefused
	// ErrUnexpectedVersion: the module reports a version that is neither
	// the one it ran before nor the one wanted.
	ErrUnexpectedVersion = hw.ErrModemVersion
	// ErrBadStep: the update record lacks its version or size, or names
	// an unknown phase (a journal from a newer agent).
	ErrBadStep = hw.ErrModemStep
)

// FOTAError is the module's own failure report at the end of an install
// (Quectel +QIND: "FOTA","END",<err> with err ≠ 0). The module keeps its
// old firmware.
type FOTAError struct {
	Code int
}

func (e *FOTAError) Error() string {
	return fmt.Sprintf("modem: module ended the firmware update with error %d", e.Code)
}

// Is makes errors.Is(err, ErrRefused) true: the module refused the file.
func (e *FOTAError) Is(target error) bool { return target == ErrRefused }

// Clock is the time source of the firmware dialects: their waits last
// minutes (a u-blox install up to 20), so tests step them faster.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// FirmwareConfig is what both dialects share. The zero value works.
type FirmwareConfig struct {
	// Clock times the long waits (default: the system clock).
	Clock Clock
	// ReadyTimeout bounds the wait for a module that is starting (power
	// up, a restart) before an ordinary command (default 30 s).
	ReadyTimeout time.Duration
	// InstallTimeout bounds the install from the start command until the
	// module answers again (default: Quectel 10 min, u-blox 25 min: the
	// manual allows 20).
	InstallTimeout time.Duration
	// Retry is the pause between attempts to reopen the port (default 1 s).
	Retry time.Duration
	// Progress, if set, receives upload and install progress.
	Progress func(stage string, pct int)

	// What the meter maker configures for the network, set again after an
	// update (a u-blox module comes back with factory settings):
	// APN is the packet data context's access point name, set with
	// AT+CGDCONT=1,"<PDPType>","<APN>" (PDPType default "IP").
	APN     string
	PDPType string
	// Provision lists further AT commands, in order (mobile network
	// operator profile, radio access technologies, bands…), e.g.
	// "AT+UMNOPROF=100", "AT+URAT=7,8".
	Provision []string
}

func (c FirmwareConfig) pdpType() string {
	if c.PDPType == "" {
		return "IP"
	}
	return c.PDPType
}

func (c *FirmwareConfig) defaults(install time.Duration) {
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.InstallTimeout <= 0 {
		c.InstallTimeout = install
	}
	if c.Retry <= 0 {
		c.Retry = time.Second
	}
}

func (c *FirmwareConfig) progress(stage string, pct int) {
	if c.Progress != nil {
		c.Progress(stage, pct)
	}
}

// MaxStarts bounds the install commands of one update: a module that comes
// back with its old version after that many is taken as refusing.
const MaxStarts = hw.ModemMaxStarts

// UpdateFirmware drives a module firmware update to its end from the step
// st; it is hw.UpdateModem (the runner lives with the capability, so the
// agent drives it without importing this driver).
func UpdateFirmware(ctx context.Context, fw hw.ModemFirmware, st hw.ModemStep, open func() (io.Reader, error), persist func(hw.ModemStep) error) (string, error) {
	return hw.UpdateModem(ctx, fw, st, open, persist)
}

// port opens a module's AT port by path, with retries while the port is
// absent or the module does not answer (it restarts, it installs), until
// the deadline. The driver of a module whose USB port vanishes while it
// restarts finds it again at the same path (a udev name such as
// /dev/ttyUSB2 or /dev/serial/by-id/…, a UART's device node).
type port struct {
	path string
	cfg  Config
	fw   *FirmwareConfig
	log  *slog.Logger
}

// open opens the port and runs Init, retrying until within has passed.
func (p *port) open(ctx context.Context, within time.Duration, cfg Config) (*Modem, error) {
	deadline := p.fw.Clock.Now().Add(within)
	var last error
	for try := 0; ; try++ {
		m, err := Open(ctx, p.path, cfg)
		if err == nil {
			return m, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !p.fw.Clock.Now().Before(deadline) {
			break
		}
		if try == 0 {
			p.log.Info("module not answering, waiting", slog.String("port", p.path), slog.Any("err", err))
		}
		select {
		case <-p.fw.Clock.After(p.fw.Retry):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return nil, fmt.Errorf("%w within %v: %w", ErrNotReady, within, last)
}

// with runs f on the module, opened for it and closed after.
func (p *port) with(ctx context.Context, f func(*Modem) error) error {
	m, err := p.open(ctx, p.fw.ReadyTimeout, p.cfg)
	if err != nil {
		return err
	}
	err = f(m)
	if cerr := m.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// dataSession runs one command with a data phase on the raw port, for the
// file uploads: the command, the module's go-ahead (CONNECT or the "> "
// prompt), then size bytes from r streamed as they are read; with ack, the
// module answers one 'A' after every 1024 bytes and the next block waits
// for it. It returns the answer lines up to the final result. The AT
// driver (Modem) is closed meanwhile: the data phase is not lines.
//
// When the data phase breaks off with the port still there, the module
// waits for the rest until its own data timeout (idle) and would take the
// next command for data: dataSession lets that time pass before it returns
// the error.
func (p *port) dataSession(ctx context.Context, cmd string, r io.Reader, size int64, ack bool, idle time.Duration, stage string) (lines []string, err error) {
	if err := checkCommand(cmd); err != nil {
		return nil, err
	}
	sp, err := serial.Open(p.path, &serial.Mode{BaudRate: p.cfg.baud(), DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrPortGone, p.path, err)
	}
	_ = sp.ResetInputBuffer()
	s := newRawSession(sp, p.fw.Clock)
	defer s.close()
	timeout := p.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s.promptMode.Store(true)
	if err := s.write([]byte(cmd + "\r")); err != nil {
		return nil, err
	}
	// The go-ahead, or an error result.
	for {
		ev, err := s.next(ctx, timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		if ev.prompt || ev.line == "CONNECT" {
			s.promptMode.Store(false)
			break
		}
		if final, ferr := finalResult(ev.line); final {
			if ferr == nil {
				ferr = fmt.Errorf("%w: OK without a data phase", ErrCommandFailed)
			}
			return nil, fmt.Errorf("%s: %w", cmd, ferr)
		}
	}
	var sent int64
	defer func() {
		if sent < size && err != nil && !errors.Is(err, ErrPortGone) && ctx.Err() == nil {
			p.log.Info("upload broken off, letting the module's data timeout pass", slog.Duration("idle", idle), slog.Any("err", err))
			select {
			case <-p.fw.Clock.After(idle + time.Second):
			case <-ctx.Done():
			}
		}
	}()
	buf := make([]byte, 1024)
	for sent < size {
		n := int64(len(buf))
		if size-sent < n {
			n = size - sent
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			// The module waits for bytes that will not come: it gives
			// up after its own data timeout; the file is removed before
			// the next upload.
			return nil, fmt.Errorf("modem: update file shorter than %d bytes: %w", size, err)
		}
		s.ackMode.Store(ack)
		if err := s.write(buf[:n]); err != nil {
			return nil, err
		}
		sent += n
		if ack && n == 1024 {
			if err := s.waitAck(ctx, timeout); err != nil {
				return nil, fmt.Errorf("%s: after %d bytes: %w", cmd, sent, err)
			}
		}
		p.fw.progress(stage, int(sent*100/size))
	}
	s.ackMode.Store(false)
	for {
		ev, err := s.next(ctx, timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		if ev.prompt || ev.ack {
			continue
		}
		if final, ferr := finalResult(ev.line); final {
			if ferr != nil {
				return lines, fmt.Errorf("%s: %w", cmd, ferr)
			}
			return lines, nil
		}
		if len(lines) == maxBody {
			return nil, fmt.Errorf("%s: %w", cmd, &SyntaxError{Line: ev.line, Msg: "answer too long"})
		}
		lines = append(lines, ev.line)
	}
}

func (c Config) baud() int {
	if c.Baud <= 0 {
		return DefaultBaud
	}
	return c.Baud
}

// rawSession reads a port on a goroutine and hands out lines, prompts and
// (in the data phase) ack bytes.
type rawSession struct {
	port       io.ReadWriteCloser
	clock      Clock
	events     chan rawEvent
	quit       chan struct{}
	done       chan struct{}
	ackMode    atomic.Bool
	promptMode atomic.Bool // before the data phase: '>' is the go-ahead
}

// rawEvent is one thing the module said. Acks travel in the same channel
// as lines so that their order survives: the module's last 'A' and its
// +QFUPL line can arrive in one read, and a reader that took them from
// two channels could see the line first.
type rawEvent struct {
	line   string
	prompt bool
	ack    bool
	err    error
}

func newRawSession(p io.ReadWriteCloser, c Clock) *rawSession {
	s := &rawSession{port: p, clock: c, events: make(chan rawEvent, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s
}

func (s *rawSession) read() {
	defer close(s.done)
	var sp Splitter
	buf := make([]byte, 256)
	for {
		n, err := s.port.Read(buf)
		for _, c := range buf[:n] {
			// In the data phase, an 'A' outside a line is the upload's
			// acknowledgement: the module sends it bare between blocks.
			if c == '>' && sp.n == 0 && s.promptMode.Load() {
				// u-blox prompts with a bare '>' (Quectel's "> " too).
				s.emit("", true)
				continue
			}
			if c == 'A' && sp.n == 0 && s.ackMode.Load() {
				s.send(rawEvent{ack: true})
				continue
			}
			sp.Feed([]byte{c}, s.emit)
		}
		if err != nil {
			select {
			case s.events <- rawEvent{err: fmt.Errorf("%w: %w", ErrPortGone, err)}:
			case <-s.quit:
			}
			return
		}
	}
}

func (s *rawSession) emit(line string, prompt bool) {
	s.send(rawEvent{line: line, prompt: prompt})
}

func (s *rawSession) send(ev rawEvent) {
	select {
	case s.events <- ev:
	default: // a flood of lines: the session ends on its timeout
	}
}

func (s *rawSession) write(b []byte) error {
	if _, err := s.port.Write(b); err != nil {
		return fmt.Errorf("%w: write: %w", ErrPortGone, err)
	}
	return nil
}

func (s *rawSession) next(ctx context.Context, timeout time.Duration) (rawEvent, error) {
	select {
	case ev := <-s.events:
		return ev, ev.err
	case <-s.clock.After(timeout):
		return rawEvent{}, ErrTimeout
	case <-ctx.Done():
		return rawEvent{}, context.Cause(ctx)
	}
}

// waitAck waits for the module's 'A'; an error line or the port's end
// meanwhile ends the upload.
func (s *rawSession) waitAck(ctx context.Context, timeout time.Duration) error {
	select {
	case ev := <-s.events:
		if ev.err != nil {
			return ev.err
		}
		if ev.ack {
			return nil
		}
		if final, ferr := finalResult(ev.line); final && ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: %q instead of the acknowledgement", ErrSyntax, ev.line)
	case <-s.clock.After(timeout):
		return fmt.Errorf("%w: no acknowledgement", ErrTimeout)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *rawSession) close() {
	close(s.quit)
	s.port.Close()
	<-s.done
}
