package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"meterupd/boards/hw"
)

// ErrUnhealthy is returned by Readings when the booted image is marked
// MarkUnhealthy.
var ErrUnhealthy = errors.New("sim: metrology produces no readings")

// maxBootLoops bounds PowerOn: every failed attempt consumes one of at most
// hw.MaxAttempts attempts of each of the three slots.
const maxBootLoops = 3*hw.MaxAttempts + 1

// PowerOn is the simulated bootloader at power-on. It forgets the previous
// boot (run/booted is RAM), loads the boot state, takes the first slot in
// Order with attempts left, decrements its attempts and stores that (two
// flash operations on the bootctl partition, subject to power cuts) before
// it jumps. A slot whose image is marked MarkUnbootable, has no sim image
// header or fails the header's CRC does not come up (kernel panic, watchdog
// reset): the loop runs again. With no attempts left, or no valid copy of
// the boot state (ErrBootCorrupt), it boots F, which is always bootable, and
// writes nothing: it never invents an order. The booted slot is recorded in
// run/booted and returned.
func (b *Board) PowerOn() (hw.Slot, error) {
	if err := os.Remove(filepath.Join(b.dir, runDir, bootedRun)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("sim: power on: %w", err)
	}
	c := bootControl{b}
	st, err := c.Load()
	if err != nil {
		if !errors.Is(err, ErrBootCorrupt) {
			return "", fmt.Errorf("sim: power on: %w", err)
		}
		b.log.Warn("boot control corrupt, booting factory slot", slog.Any("err", err))
		return b.setBooted(hw.SlotF)
	}
	for range maxBootLoops {
		s, ok := firstWithAttempts(st)
		if !ok {
			b.log.Info("no slot has attempts left, booting factory slot")
			return b.setBooted(hw.SlotF)
		}
		st.Left[s]--
		if err := c.Store(st); err != nil {
			return "", fmt.Errorf("sim: power on: %w", err)
		}
		if why := b.unbootable(s); why != "" {
			b.log.Warn("boot failed, watchdog reset", slog.String("slot", string(s)), slog.String("reason", why), slog.Int("left", st.Left[s]))
			continue
		}
		b.log.Info("booted", slog.String("slot", string(s)), slog.Int("left", st.Left[s]))
		return b.setBooted(s)
	}
	return b.setBooted(hw.SlotF) // unreachable: each loop consumed an attempt
}

func firstWithAttempts(st hw.BootState) (hw.Slot, bool) {
	for _, s := range st.Order {
		if st.Left[s] > 0 {
			return s, true
		}
	}
	return "", false
}

func (b *Board) setBooted(s hw.Slot) (hw.Slot, error) {
	if err := writeFileAtomic(filepath.Join(b.dir, runDir, bootedRun), []byte(s), false); err != nil {
		return "", fmt.Errorf("sim: power on: %w", err)
	}
	return s, nil
}

// unbootable returns why slot s does not come up, or "" if it does. F
// always comes up.
func (b *Board) unbootable(s hw.Slot) string {
	if s == hw.SlotF {
		return ""
	}
	f := b.parts[string(s)]
	hdr := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return err.Error()
	}
	if bytes.Contains(hdr, []byte(MarkUnbootable)) {
		return "image marked unbootable"
	}
	h, err := ParseImageHeader(hdr)
	if err != nil {
		return err.Error()
	}
	if h.Size > f.size {
		return "image larger than slot"
	}
	buf := make([]byte, 64<<10)
	crc := uint32(0)
	for off := int64(HeaderSize); off < h.Size; {
		n := min(int64(len(buf)), h.Size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return err.Error()
		}
		crc = crc32.Update(crc, crc32.IEEETable, buf[:n])
		off += n
	}
	if crc != h.CRC {
		return "image checksum mismatch"
	}
	return ""
}

// Reboot runs PowerOn and returns hw.ErrRebooted, or PowerOn's error: the
// caller starts over as after a boot.
func (b *Board) Reboot() error {
	if _, err := b.PowerOn(); err != nil {
		return fmt.Errorf("sim: reboot: %w", err)
	}
	return hw.ErrRebooted
}

// Readings is the metrology check: it fails when the node has not booted,
// or with ErrUnhealthy when the booted slot's image is marked MarkUnhealthy.
func (b *Board) Readings() error {
	s, err := b.Boot().Booted()
	if err != nil {
		return err
	}
	hdr := make([]byte, HeaderSize)
	if _, err := b.parts[string(s)].ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("sim: readings: %w", err)
	}
	if bytes.Contains(hdr, []byte(MarkUnhealthy)) {
		return fmt.Errorf("%w: slot %s", ErrUnhealthy, s)
	}
	return nil
}

// power is the hw.Power of a Board: the file "power" in the state directory
// (absent means mains), so a test or the demo can switch it from outside.
type power struct{ b *Board }

// Power returns the power source, mains unless SetPower said otherwise.
func (b *Board) Power() hw.Power { return power{b} }

func (p power) Source() (hw.PowerSource, error) {
	data, err := os.ReadFile(filepath.Join(p.b.dir, powerName))
	if errors.Is(err, os.ErrNotExist) {
		return hw.Mains, nil
	}
	if err != nil {
		return "", fmt.Errorf("sim: power source: %w", err)
	}
	switch s := hw.PowerSource(strings.TrimSpace(string(data))); s {
	case hw.Mains, hw.Battery:
		return s, nil
	}
	return "", fmt.Errorf("%w: power file holds %q", ErrCorruptState, data)
}

// SetPower switches the power source; it persists in the state directory.
func (b *Board) SetPower(s hw.PowerSource) error {
	if s != hw.Mains && s != hw.Battery {
		return fmt.Errorf("sim: unknown power source %q", s)
	}
	return writeFileAtomic(filepath.Join(b.dir, powerName), []byte(string(s)+"\n"), false)
}

// clockName is the sim's RTC valid flag: the file "clock" in the state
// directory holding "valid" or "invalid" (absent means valid: the factory
// set the RTC), so a test or the demo can switch it from outside.
const clockName = "clock"

var _ hw.ClockSource = (*Board)(nil)

// ClockValid reports the RTC's valid flag (hw.ClockSource).
func (b *Board) ClockValid() (bool, error) {
	data, err := os.ReadFile(filepath.Join(b.dir, clockName))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("sim: clock flag: %w", err)
	}
	switch strings.TrimSpace(string(data)) {
	case "valid":
		return true, nil
	case "invalid":
		return false, nil
	}
	return false, fmt.Errorf("%w: clock file holds %q", ErrCorruptState, data)
}

// SetClockValid sets the RTC's valid flag; it persists in the state
// directory (an RTC keeps its flag across power cuts).
func (b *Board) SetClockValid(valid bool) error {
	s := "invalid\n"
	if valid {
		s = "valid\n"
	}
	return writeFileAtomic(filepath.Join(b.dir, clockName), []byte(s), false)
}

// throttleName is the sim's I/O throttle configuration: the JSON file
// "throttle.json" in the state directory (absent: unthrottled, so tests
// and the power-cut suite run at full speed), e.g.
//
//	{"bytes_per_sec": 1048576, "yield_every": 65536, "yield_ms": 2, "gate_file": "/run/metrology.closing"}
//
// gate_file, relative to the state directory unless absolute, exists
// while the metrology process closes an interval.
const throttleName = "throttle.json"

var _ hw.ThrottleBoard = (*Board)(nil)

// IOThrottle reads throttle.json (hw.ThrottleBoard). A file that does not
// parse is logged and ignored: the agent then runs unthrottled rather
// than not at all.
func (b *Board) IOThrottle() (hw.IOThrottle, bool) {
	data, err := os.ReadFile(filepath.Join(b.dir, throttleName))
	if err != nil {
		return hw.IOThrottle{}, false
	}
	var c struct {
		BytesPerSec int64  `json:"bytes_per_sec"`
		YieldEvery  int64  `json:"yield_every"`
		YieldMS     int64  `json:"yield_ms"`
		GateFile    string `json:"gate_file"`
	}
	if err := json.Unmarshal(data, &c); err != nil || c.YieldMS < 0 || c.YieldMS > 1000 {
		b.log.Warn("sim: throttle.json ignored", slog.Any("err", err), slog.Int64("yield_ms", c.YieldMS))
		return hw.IOThrottle{}, false
	}
	t := hw.IOThrottle{BytesPerSec: c.BytesPerSec, YieldEvery: c.YieldEvery, Yield: time.Duration(c.YieldMS) * time.Millisecond}
	if g := c.GateFile; g != "" {
		if !filepath.IsAbs(g) {
			g = filepath.Join(b.dir, g)
		}
		t.Closing = func() bool { _, err := os.Stat(g); return err == nil }
	}
	return t, true
}
