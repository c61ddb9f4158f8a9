// Package hw holds the hardware contracts that the agent needs from a meter:
// flash partitions with real flash rules, the bootloader's boot control, the
// power source, and reboot. It has no implementations; drivers live in
// sibling packages (boards/sim, and the Linux drivers) and board files
// compose them for one product.
//
// The contracts are small on purpose (periph's conn.Conn, stdlib io): extra
// capabilities are discovered by type assertion, not by fattening Board.
package hw

import (
	"context"
	"errors"
	"io"
	"time"
)

// Flash is one flash partition.
//
// Flash rules, as on the real parts: a range must be erased before it is
// programmed; Erase sets bytes to the erased value (0xFF); programming can
// only clear bits (NOR) or write each page once (NAND), so programming a 1
// over a 0 is an error. Offsets and lengths of WriteAt are multiples of
// WriteSize, and of Erase multiples of EraseSize; a misaligned call fails
// with an error wrapping ErrAlignment and changes nothing.
//
// ReadAt follows io.ReaderAt. WriteAt programs p at off; a short write is an
// error. A power cut may interrupt any WriteAt or Erase: afterwards the range
// may be partly programmed or partly erased (a torn operation).
type Flash interface {
	io.ReaderAt
	io.WriterAt
	// Erase erases n bytes at off; both are multiples of EraseSize.
	Erase(off, n int64) error
	// Size is the partition's size in bytes, a multiple of EraseSize.
	Size() int64
	// EraseSize is the erase-block size in bytes.
	EraseSize() int64
	// WriteSize is the program unit in bytes (1 on NOR, a page on NAND).
	WriteSize() int64
}

// Slot names a system set: a kernel and root file system pair.
// The values are stored in the journal and the boot control: never rename one.
type Slot string

const (
	SlotA Slot = "A" // updatable
	SlotB Slot = "B" // updatable
	SlotF Slot = "F" // factory fail-safe: never written by the agent
)

// Valid reports whether s names one of the three slots.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB || s == SlotF }

// BootState is what the bootloader reads at every power-on: the order in
// which it tries the slots and how many attempts each has left. The
// bootloader takes the first slot in Order with Left > 0, decrements its Left
// (persisted before it jumps), and boots it; when no slot in Order has
// attempts left, it boots F, which is always bootable. A slot that is not in
// Order is never booted.
//
// The agent writes a whole BootState in one atomic write: arming a trial is
// Order=[new, old], Left[new]=attempts; marking a boot good restores Left of
// the booted slot.
type BootState struct {
	Order []Slot       `json:"order"`
	Left  map[Slot]int `json:"left"`
}

// Clone returns a deep copy of b.
func (b BootState) Clone() BootState {
	c := BootState{Order: append([]Slot(nil), b.Order...), Left: make(map[Slot]int, len(b.Left))}
	for k, v := range b.Left {
		c.Left[k] = v
	}
	return c
}

// MaxAttempts bounds the attempts counter, as the 3-bit field of Android's
// boot_control and the bootlimit variables of U-Boot scripts do.
const MaxAttempts = 7

// BootControl is the bootloader's state as the running system sees it.
type BootControl interface {
	// Booted reports the slot the bootloader started for this boot.
	Booted() (Slot, error)
	// Load reads the stored boot state.
	Load() (BootState, error)
	// Store replaces the stored boot state in one atomic write: after a
	// power cut the bootloader sees either the old or the new state.
	Store(BootState) error
}

// PowerSource is where the node's power comes from now.
type PowerSource string

const (
	Mains   PowerSource = "mains"
	Battery PowerSource = "battery" // the backup battery: no updates on it
)

// Power reports the power source.
type Power interface {
	Source() (PowerSource, error)
}

// Partition names every board provides.
const (
	PartJournal = "journal" // the journal (journal package)
	PartCommon  = "common"  // configuration, calibration, metering readings
)

// Board bundles what the agent needs from one product's hardware.
// Optional capabilities (a modem, a metrology process to health-check) are
// found by type assertion on the Board.
type Board interface {
	// Name is the board file's name, e.g. "sim".
	Name() string
	// Partition returns a named partition (PartJournal, PartCommon, …).
	Partition(name string) (Flash, error)
	// Slot returns the flash that holds a system set's image. For SlotF it
	// is read-only: WriteAt and Erase fail with ErrReadOnly.
	Slot(s Slot) (Flash, error)
	Boot() BootControl
	Power() Power
	// Reboot restarts the node. It does not return on a real board; any
	// return is an error. The sim board returns ErrRebooted after running
	// its simulated bootloader, so the caller starts over as after a boot.
	Reboot() error
}

// Metrology is the meter's measuring process, as a health check sees it.
type Metrology interface {
	// Readings reports whether the metrology process runs and produces
	// readings; an error says why not.
	Readings() error
}

// Radio is the node's radio modem as the agent sees it: an optional
// capability of a Board (found by type assertion), so that the agent knows
// no modem driver, no serial port and no AT command.
//
// Linked talks to the modem (bounded by ctx) and remembers what it learnt;
// RadioStatus only returns that memory and never does I/O, so a status
// query never waits for a radio. A board that may or may not have a radio
// returns an error wrapping ErrUnsupported from Linked when it has none.
type Radio interface {
	// Linked reports whether the radio links (registered, hearing a
	// signal): nil, or an error that says why not.
	Linked(ctx context.Context) error
	// RadioStatus is the answer of the last Linked; ok is false when the
	// radio was never asked (or the board has none).
	RadioStatus() (st RadioStatus, ok bool)
}

// RadioStatus is what the node last learnt of its radio.
type RadioStatus struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Firmware     string `json:"firmware,omitempty"`
	Registered   bool   `json:"registered"`
	// SignalDBm is the received signal strength, absent when unknown.
	SignalDBm *int `json:"signal_dbm,omitempty"`
	// Error says why the modem did not answer (the other fields are then
	// those of the last answer, if any).
	Error string `json:"error,omitempty"`
	// Checked is when the modem was asked.
	Checked time.Time `json:"checked"`
}

var (
	ErrAlignment   = errors.New("hw: misaligned flash operation")
	ErrNotErased   = errors.New("hw: programming over unerased flash")
	ErrReadOnly    = errors.New("hw: partition is read-only")
	ErrBadBlock    = errors.New("hw: bad erase block")
	ErrRebooted    = errors.New("hw: rebooted")
	ErrUnsupported = errors.ErrUnsupported
)

// ErrBootStateLost: BootControl.Load found no readable boot state (every
// copy corrupt). The bootloader then starts F without an order, so that
// boot is no evidence against any set. Boot controls wrap it.
var ErrBootStateLost = errors.New("hw: boot state lost")
