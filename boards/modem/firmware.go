package modem

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"time"
)

// FirmwareUpdater is a component whose firmware the agent updates with
// its own transfer process: the radio module here. The manifest's
// component field selects which one an item goes to.
type FirmwareUpdater interface {
	// Version reports the running firmware version.
	Version(ctx context.Context) (string, error)
	// Update transfers the image of size bytes from r and activates it.
	// It returns once the component runs again (not necessarily the new
	// version: the caller compares Version with the manifest).
	Update(ctx context.Context, r io.Reader, size int64) error
}

// CME error codes of the firmware transfer (module-specific range).
const (
	CMEChecksum  = 801 // chunk or image CRC mismatch
	CMEOffset    = 802 // chunk not at the session's offset
	CMENoSession = 803 // no transfer session, or image incomplete at AT+FWACT
	CMETooLarge  = 804 // image larger than the module's staging area
)

// MaxChunk bounds one AT+FWDATA chunk, whatever the module offers.
const MaxChunk = 64 << 10

var (
	// ErrFirmwareProtocol is a module answer that breaks the transfer
	// protocol (an offset that does not add up, a missing answer line).
	ErrFirmwareProtocol = errors.New("modem: firmware transfer protocol violation")
	// ErrShortImage is returned when r ends before size bytes.
	ErrShortImage = errors.New("modem: firmware image shorter than its size")
	// ErrNotRestarted is returned when the module does not answer after
	// activating new firmware.
	ErrNotRestarted = errors.New("modem: module did not come back after activation")
)

// UpdaterConfig configures an ATUpdater. The zero value works.
type UpdaterConfig struct {
	Logger *slog.Logger
	// Chunk is the chunk size the host prefers (default 1024); the
	// module's maximum wins when smaller.
	Chunk int
	// Retries is how often one chunk is sent again after a checksum error
	// or a lost answer (default 3).
	Retries int
	// VerifyTimeout bounds AT+FWACT's answer: the module checks the whole
	// image (default 30 s).
	VerifyTimeout time.Duration
	// RestartTimeout bounds the wait for the module's RDY after AT+FWACT
	// (default 60 s).
	RestartTimeout time.Duration
	// Progress, if set, is called after every accepted chunk.
	Progress func(done, total int64)
}

// ATUpdater updates the module's firmware over its AT port with the
// transfer described in the package documentation (AT+FWUPD, AT+FWDATA,
// AT+FWACT). A transfer that breaks off resumes where the module's staging
// area ends, when the image comes from an io.Seeker (so that its CRC, the
// session key, is known before the first byte is sent).
type ATUpdater struct {
	m   *Modem
	cfg UpdaterConfig
	log *slog.Logger
}

var _ FirmwareUpdater = (*ATUpdater)(nil)

// NewATUpdater returns the updater for the module behind m.
func NewATUpdater(m *Modem, cfg UpdaterConfig) *ATUpdater {
	if cfg.Logger == nil {
		cfg.Logger = m.log
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 1024
	}
	if cfg.Chunk > MaxChunk {
		cfg.Chunk = MaxChunk
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 3
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 30 * time.Second
	}
	if cfg.RestartTimeout <= 0 {
		cfg.RestartTimeout = 60 * time.Second
	}
	return &ATUpdater{m: m, cfg: cfg, log: cfg.Logger}
}

// Version reports the module's firmware revision (AT+CGMR).
func (u *ATUpdater) Version(ctx context.Context) (string, error) {
	return u.m.FirmwareVersion(ctx)
}

// parseNums parses "+XXX: <a>[,<b>…]": exactly n decimal numbers, each
// in 0..max.
func parseNums(line, prefix string, n int, max int64) ([]int64, error) {
	f, err := params(line, prefix)
	if err != nil {
		return nil, err
	}
	if len(f) != n {
		return nil, &SyntaxError{Line: line, Offset: len(line), Msg: fmt.Sprintf("want %d parameters", n)}
	}
	v := make([]int64, n)
	for i := range v {
		if f[i].quoted || f[i].s == "" || len(f[i].s) > 19 {
			return nil, &SyntaxError{Line: line, Offset: len(prefix), Msg: "want a number"}
		}
		for _, c := range []byte(f[i].s) {
			if c < '0' || c > '9' {
				return nil, &SyntaxError{Line: line, Offset: len(prefix), Msg: "want a number"}
			}
			if v[i] > (max-int64(c-'0'))/10 {
				return nil, &SyntaxError{Line: line, Offset: len(prefix), Msg: "number out of range"}
			}
			v[i] = v[i]*10 + int64(c-'0')
		}
	}
	return v, nil
}

// one returns the single answer line of cmd.
func one(cmd string, lines []string) (string, error) {
	if len(lines) != 1 {
		return "", fmt.Errorf("%w: %s: %d answer lines", ErrFirmwareProtocol, cmd, len(lines))
	}
	return lines[0], nil
}

// Update transfers and activates a firmware image (see FirmwareUpdater).
func (u *ATUpdater) Update(ctx context.Context, r io.Reader, size int64) error {
	if size <= 0 {
		return fmt.Errorf("modem: firmware size %d: %w", size, ErrBadCommand)
	}
	// The session key: the image's CRC when it can be read twice, else
	// none (the module then starts afresh).
	id := ""
	if s, ok := r.(io.Seeker); ok {
		start, err := s.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("modem: firmware image: %w", err)
		}
		h := crc32.NewIEEE()
		if n, err := io.CopyN(h, r, size); err != nil {
			return fmt.Errorf("%w: %d of %d bytes: %w", ErrShortImage, n, size, err)
		}
		if _, err := s.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("modem: firmware image: %w", err)
		}
		id = fmt.Sprintf("%08x", h.Sum32())
	}

	cmd := fmt.Sprintf("AT+FWUPD=%d,%q", size, id)
	lines, err := u.m.exec(ctx, cmd, "+FWUPD:", nil, 0)
	if err != nil {
		return fmt.Errorf("modem: start firmware transfer: %w", err)
	}
	line, err := one(cmd, lines)
	if err != nil {
		return err
	}
	v, err := parseNums(line, "+FWUPD:", 2, 1<<62)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFirmwareProtocol, err)
	}
	off, maxChunk := v[0], v[1]
	if off > size {
		return fmt.Errorf("%w: module resumes at %d of %d bytes", ErrFirmwareProtocol, off, size)
	}
	if maxChunk == 0 {
		return fmt.Errorf("%w: module offers chunks of 0 bytes", ErrFirmwareProtocol)
	}
	chunk := int64(u.cfg.Chunk)
	if maxChunk < chunk {
		chunk = maxChunk
	}
	if off > 0 {
		u.log.Info("resuming modem firmware transfer", slog.Int64("offset", off), slog.Int64("size", size))
	}

	h := crc32.NewIEEE()
	if n, err := io.CopyN(h, r, off); err != nil {
		return fmt.Errorf("%w: %d of %d bytes: %w", ErrShortImage, n, size, err)
	}
	buf := make([]byte, chunk)
	for off < size {
		n := min(chunk, size-off)
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return fmt.Errorf("%w: at %d of %d: %w", ErrShortImage, off, size, err)
		}
		next, err := u.sendChunk(ctx, off, p)
		if err != nil {
			return err
		}
		h.Write(p)
		off = next
		if u.cfg.Progress != nil {
			u.cfg.Progress(off, size)
		}
	}

	// Register for RDY before activating: it may come right after OK.
	rdy := u.m.waitFor("RDY")
	defer u.m.unwait("RDY", rdy)
	cmd = fmt.Sprintf("AT+FWACT=\"%08x\"", h.Sum32())
	if _, err := u.m.exec(ctx, cmd, "+FWACT:", nil, u.cfg.VerifyTimeout); err != nil {
		return fmt.Errorf("modem: activate firmware: %w", err)
	}
	u.log.Info("modem firmware activated, waiting for restart")
	wctx, cancel := context.WithTimeout(ctx, u.cfg.RestartTimeout)
	defer cancel()
	select {
	case <-rdy:
	case <-wctx.Done():
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		// RDY lost in noise? Try whether the module answers anyway.
	}
	if err := u.m.Init(wctx); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRestarted, err)
	}
	return nil
}

// sendChunk sends p at off, retrying after a checksum error or a lost
// answer, and returns the module's new offset.
func (u *ATUpdater) sendChunk(ctx context.Context, off int64, p []byte) (int64, error) {
	want := off + int64(len(p))
	cmd := fmt.Sprintf("AT+FWDATA=%d,%d,\"%08x\"", off, len(p), crc32.ChecksumIEEE(p))
	// The module needs the bytes' time on the wire on top of its answer.
	wire := time.Duration(len(p)) * 10 * time.Second / time.Duration(u.m.cfg.Baud)
	var last error
	for try := 0; try <= u.cfg.Retries; try++ {
		if try > 0 {
			u.log.Warn("resending modem firmware chunk", slog.Int64("offset", off), slog.Int("try", try), slog.Any("err", last))
		}
		lines, err := u.m.exec(ctx, cmd, "+FWDATA:", p, u.m.cfg.Timeout+wire)
		if err == nil {
			line, err := one(cmd, lines)
			if err != nil {
				return 0, err
			}
			v, err := parseNums(line, "+FWDATA:", 1, 1<<62)
			if err != nil || v[0] != want {
				return 0, fmt.Errorf("%w: %s answered %q, want offset %d", ErrFirmwareProtocol, cmd, line, want)
			}
			return want, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		var cme *CMEError
		switch {
		case errors.As(err, &cme) && cme.Code == CMEChecksum:
		case errors.Is(err, ErrTimeout), errors.As(err, &cme) && cme.Code == CMEOffset:
			// The answer was lost, or the chunk went in before: ask the
			// module where it stands.
			got, qerr := u.query(ctx)
			if qerr != nil {
				return 0, qerr
			}
			if got == want {
				return want, nil
			}
			if got != off {
				return 0, fmt.Errorf("%w: module at offset %d, host at %d", ErrFirmwareProtocol, got, off)
			}
		default:
			return 0, fmt.Errorf("modem: firmware chunk at %d: %w", off, err)
		}
		last = err
	}
	return 0, fmt.Errorf("modem: firmware chunk at %d: %d tries: %w", off, u.cfg.Retries+1, last)
}

// query asks AT+FWUPD? for the module's offset.
func (u *ATUpdater) query(ctx context.Context) (int64, error) {
	lines, err := u.m.exec(ctx, "AT+FWUPD?", "+FWUPD:", nil, 0)
	if err != nil {
		return 0, fmt.Errorf("modem: query firmware transfer: %w", err)
	}
	line, err := one("AT+FWUPD?", lines)
	if err != nil {
		return 0, err
	}
	v, err := parseNums(line, "+FWUPD:", 2, 1<<62)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrFirmwareProtocol, err)
	}
	return v[1], nil
}
