package am335x

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"meterupd/boards"
	"meterupd/boards/hw"
	"meterupd/boards/modem"
	"meterupd/boards/mtd"
	"meterupd/boards/ubootboot"
	"meterupd/boards/ubootenv"
)

func init() {
	boards.MustRegister(boards.Entry{
		Name:       Name,
		Compatible: Compatible,
		Probe:      Probe,
		Open: func(cfg boards.Config) (hw.Board, error) {
			b, err := Open(cfg)
			if err != nil {
				return nil, err
			}
			return b, nil
		},
	})
}

// ErrLayout: /proc/mtd has this board's partitions, but not as Layout says.
var ErrLayout = errors.New("am335x: mtd partitions differ from the board file")

// Probe reports whether root/proc/mtd holds this board's partitions: none
// of them is "not this board"; all of them, with Layout's sizes, is this
// board; some, or other sizes, is this board misconfigured (ErrLayout).
func Probe(cfg boards.Config) (bool, error) {
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	parts, err := mtd.ReadPartitions(filepath.Join(root, "proc", "mtd"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var found, missing []string
	for _, l := range Layout {
		if l.Logical == 0 {
			continue
		}
		p, ok := mtd.Find(parts, l.Name)
		switch {
		case !ok:
			missing = append(missing, l.Name)
		case p.Size != l.Size || p.EraseSize != EraseSize:
			return false, fmt.Errorf("%w: %s is %#x bytes in %#x blocks, want %#x in %#x", ErrLayout, l.Name, p.Size, p.EraseSize, l.Size, EraseSize)
		default:
			found = append(found, l.Name)
		}
	}
	if len(found) == 0 {
		return false, nil
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("%w: missing %v", ErrLayout, missing)
	}
	return true, nil
}

// ErrUnknownPartition: a partition name the board does not have.
var ErrUnknownPartition = errors.New("am335x: unknown partition")

// Board is the reference meter.
type Board struct {
	root    string
	log     *slog.Logger
	mtdOpts []mtd.Option // tests: a fake device opener

	mu   sync.Mutex // guards open
	open map[string]*mtd.Flash

	bootMu sync.Mutex // guards boot; taken before mu
	boot   hw.BootControl

	power sysfsPower

	radioOnce sync.Once
	radio     *modem.Radio
}

var _ hw.Board = (*Board)(nil)

// Open opens the board. Partitions are opened on first use.
func Open(cfg boards.Config, opts ...mtd.Option) (*Board, error) {
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Board{root: root, log: log, mtdOpts: opts, open: map[string]*mtd.Flash{}, power: sysfsPower{root: root}}
	return b, nil
}

func (b *Board) Name() string { return Name }

// part opens a partition of Layout at its logical size (once).
func (b *Board) part(name string, readOnly bool) (*mtd.Flash, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.open[name]; ok {
		return f, nil
	}
	var p *Part
	for i := range Layout {
		if Layout[i].Name == name && Layout[i].Logical > 0 {
			p = &Layout[i]
		}
	}
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPartition, name)
	}
	opts := append([]mtd.Option{mtd.WithSize(p.Logical)}, b.mtdOpts...)
	if readOnly {
		opts = append(opts, mtd.WithReadOnly())
	}
	f, err := mtd.Open(b.root, name, opts...)
	if err != nil {
		return nil, fmt.Errorf("am335x: %w", err)
	}
	if f.EraseSize() != EraseSize || f.WriteSize() != PageSize {
		f.Close()
		return nil, fmt.Errorf("am335x: %s: erase %d page %d, the board file says %d and %d: wrong board?", name, f.EraseSize(), f.WriteSize(), EraseSize, PageSize)
	}
	b.open[name] = f
	return f, nil
}

// Partition returns the journal or the common partition.
func (b *Board) Partition(name string) (hw.Flash, error) {
	if name != hw.PartJournal && name != hw.PartCommon {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPartition, name)
	}
	return b.part(name, false)
}

// Slot returns a system set: kernel and root file system partitions
// concatenated (A, B), or the read-only failsafe partition (F).
func (b *Board) Slot(s hw.Slot) (hw.Flash, error) {
	names, ok := SlotParts[s]
	if !ok {
		return nil, fmt.Errorf("am335x: unknown slot %q", s)
	}
	var parts []hw.Flash
	for _, n := range names {
		f, err := b.part(n, s == hw.SlotF)
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return mtd.NewConcat(parts...)
}

// Boot returns the boot control over the U-Boot environment. It is opened
// on first use; if the environment cannot be opened, every method reports
// why.
func (b *Board) Boot() hw.BootControl {
	b.bootMu.Lock()
	defer b.bootMu.Unlock()
	if b.boot != nil {
		return b.boot
	}
	bc, err := b.openBoot()
	if err != nil {
		return brokenBoot{err} // not cached: the next call tries again
	}
	b.boot = bc
	return bc
}

func (b *Board) openBoot() (hw.BootControl, error) {
	store, err := b.EnvStore()
	if err != nil {
		return nil, err
	}
	return ubootboot.New(store, ubootboot.WithRoot(b.root), ubootboot.WithLogger(b.log)), nil
}

// EnvStore opens the U-Boot environment: the two copies of Env, on NAND
// (counter flag style). The factory image provisions it; the boot control
// never writes a fresh one (see package ubootboot).
func (b *Board) EnvStore() (*ubootenv.Store, error) {
	var copies []ubootenv.FlashCopy
	for _, e := range Env {
		f, err := b.part(e.Partition, false)
		if err != nil {
			return nil, err
		}
		copies = append(copies, ubootenv.FlashCopy{Flash: f, Offset: e.Offset})
	}
	store, err := ubootenv.NewFlash(Env[0].Size, copies, ubootenv.WithLogger(b.log))
	if err != nil {
		return nil, fmt.Errorf("am335x: boot environment: %w", err)
	}
	return store, nil
}

// brokenBoot reports why the boot control could not be opened.
type brokenBoot struct{ err error }

func (e brokenBoot) Booted() (hw.Slot, error)    { return "", e.err }
func (e brokenBoot) Load() (hw.BootState, error) { return hw.BootState{}, e.err }
func (e brokenBoot) Store(hw.BootState) error    { return e.err }

func (b *Board) Power() hw.Power { return b.power }

// Reboot restarts the node; it returns only on failure.
func (b *Board) Reboot() error { return reboot() }

// Linked asks the cellular modem on its AT port whether it links
// (hw.Radio, an optional capability found by type assertion).
func (b *Board) Linked(ctx context.Context) error { return b.modem().Linked(ctx) }

// RadioStatus is the modem's answer to the last Linked, without I/O.
func (b *Board) RadioStatus() (hw.RadioStatus, bool) { return b.modem().RadioStatus() }

func (b *Board) modem() *modem.Radio {
	b.radioOnce.Do(func() {
		b.radio = &modem.Radio{Path: filepath.Join(b.root, ModemPort), Config: modem.Config{Logger: b.log, Baud: ModemBaud}}
	})
	return b.radio
}

var _ hw.Radio = (*Board)(nil)

// ModemFirmware is the module whose firmware a package's modem item
// updates (hw.ModemFirmwareBoard): the reference meter carries a Quectel
// BG95 on ModemPort, updated over DFOTA with the driver's defaults and
// the module's own network settings kept (a Quectel module keeps them
// across DFOTA). A board with a u-blox SARA-R4 returns a *modem.UBlox
// with its APN and provisioning commands (docs/modem.md).
func (b *Board) ModemFirmware() hw.ModemFirmware {
	return &modem.Quectel{Path: filepath.Join(b.root, ModemPort), Config: modem.Config{Logger: b.log, Baud: ModemBaud}}
}

var _ hw.ModemFirmwareBoard = (*Board)(nil)

// Close closes the partitions opened so far.
func (b *Board) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for n, f := range b.open {
		errs = append(errs, f.Close())
		delete(b.open, n)
	}
	return errors.Join(errs...)
}

// sysfsPower reads the mains supply's online flag.
type sysfsPower struct{ root string }

// ErrPower: the power supply's state is unreadable.
var ErrPower = errors.New("am335x: power supply state unknown")

func (p sysfsPower) Source() (hw.PowerSource, error) {
	path := filepath.Join(p.root, "sys", "class", "power_supply", MainsSupply, "online")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPower, err)
	}
	switch strings.TrimSpace(string(data)) {
	case "1":
		return hw.Mains, nil
	case "0":
		return hw.Battery, nil
	}
	return "", fmt.Errorf("%w: %s = %.8q", ErrPower, path, data)
}
