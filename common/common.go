package common

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"meterupd/boards/hw"
	"meterupd/internal/flashrec"
)

// MinArea is the smallest area: small erase blocks are grouped.
const MinArea = 4 << 10

// Caps on payloads: the settings' opaque blobs and one reading.
const (
	MaxSettings = 3 << 10 // configuration + calibration, encoded
	MaxReading  = 256
)

var (
	settingsMagic = [4]byte{'M', 'U', 'C', 'S'}
	archiveMagic  = [4]byte{'M', 'U', 'C', 'A'}
	readingsMagic = [4]byte{'M', 'U', 'C', 'R'}
)

// Sentinel errors; test with errors.Is.
var (
	ErrGeometry       = errors.New("common: partition too small for the layout")
	ErrNoSettings     = errors.New("common: no settings written")
	ErrNoArchive      = errors.New("common: no archive")
	ErrArchiveCorrupt = errors.New("common: archive does not match its digest")
	ErrTooLarge       = errors.New("common: data too large")
	ErrDecode         = errors.New("common: cannot decode")
)

// Settings are the configuration and calibration every set shares. The
// agent treats Config and Calibration as opaque bytes.
type Settings struct {
	Schema      uint32 `cbor:"1,keyasint" json:"schema"`
	Config      []byte `cbor:"2,keyasint" json:"config"`
	Calibration []byte `cbor:"3,keyasint" json:"calibration"`
}

// Digest is the SHA-256 of the settings' encoding.
func (s Settings) Digest() [32]byte {
	b, _ := flashrec.Marshal(s) // plain struct: cannot fail
	return sha256.Sum256(b)
}

// Archive is the archived copy of the settings.
type Archive struct {
	Settings Settings `cbor:"1,keyasint" json:"settings"`
	Digest   []byte   `cbor:"2,keyasint" json:"digest"`
	// Tag names the software identity the copy was taken under (the set
	// that was running before the activation).
	Tag string `cbor:"3,keyasint" json:"tag"`
}

// Reading is one record of the metrology process: an interval's number,
// its end time and the energy register at its close.
type Reading struct {
	Seq       uint64 `cbor:"-" json:"seq"`
	Interval  uint64 `cbor:"1,keyasint" json:"interval"`
	UnixMilli int64  `cbor:"2,keyasint" json:"unix_ms"`
	Wh        int64  `cbor:"3,keyasint" json:"wh"`
	Samples   uint32 `cbor:"4,keyasint" json:"samples"`
}

// Common is the open common partition. It is not safe for concurrent use:
// the daemon owns it (the metrology process appends readings through it).
type Common struct {
	settings, archive, readings *flashrec.Ring
}

// Layout returns the byte ranges of the three regions on f.
func Layout(f hw.Flash) (settings, archive, readings [2]int64, err error) {
	es := f.EraseSize()
	if es <= 0 || f.Size()%es != 0 {
		return settings, archive, readings, fmt.Errorf("%w: size %d, erase size %d", ErrGeometry, f.Size(), es)
	}
	area := (MinArea + es - 1) / es * es
	if f.Size() < 6*area {
		return settings, archive, readings, fmt.Errorf("%w: %d bytes, need 6 areas of %d", ErrGeometry, f.Size(), area)
	}
	return [2]int64{0, 2 * area}, [2]int64{2 * area, 2 * area}, [2]int64{4 * area, f.Size() - 4*area}, nil
}

// Open reads the partition's three regions; it never writes.
func Open(f hw.Flash) (*Common, error) {
	s, a, r, err := Layout(f)
	if err != nil {
		return nil, err
	}
	open := func(reg [2]int64, magic [4]byte, max int) (*flashrec.Ring, error) {
		w, err := flashrec.NewWindow(f, reg[0], reg[1])
		if err != nil {
			return nil, fmt.Errorf("common: %w", err)
		}
		ring, err := flashrec.OpenRing(w, flashrec.RingConfig{Magic: magic, Version: 1, MaxPayload: max, MinArea: MinArea})
		if err != nil {
			return nil, fmt.Errorf("common: %w", err)
		}
		return ring, nil
	}
	c := &Common{}
	if c.settings, err = open(s, settingsMagic, MaxSettings+64); err != nil {
		return nil, err
	}
	if c.archive, err = open(a, archiveMagic, MaxSettings+128); err != nil {
		return nil, err
	}
	if c.readings, err = open(r, readingsMagic, MaxReading); err != nil {
		return nil, err
	}
	return c, nil
}

// Settings returns the current settings.
func (c *Common) Settings() (Settings, error) {
	fr, ok := c.settings.Newest()
	if !ok {
		return Settings{}, ErrNoSettings
	}
	var s Settings
	if err := decode(fr.Payload, &s); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// WriteSettings replaces the settings (power-safe: the previous snapshot
// stays until the new one is complete).
func (c *Common) WriteSettings(s Settings) error {
	b, err := flashrec.Marshal(s)
	if err != nil {
		return fmt.Errorf("common: %w", err)
	}
	if len(b) > MaxSettings {
		return fmt.Errorf("%w: settings of %d bytes, limit %d", ErrTooLarge, len(b), MaxSettings)
	}
	if err := c.settings.Replace(b); err != nil {
		return fmt.Errorf("common: write settings: %w", err)
	}
	return nil
}

// Archived returns the archive.
func (c *Common) Archived() (Archive, error) {
	fr, ok := c.archive.Newest()
	if !ok {
		return Archive{}, ErrNoArchive
	}
	var a Archive
	if err := decode(fr.Payload, &a); err != nil {
		return Archive{}, err
	}
	if d := a.Settings.Digest(); !bytes.Equal(d[:], a.Digest) {
		return Archive{}, fmt.Errorf("%w: tag %q", ErrArchiveCorrupt, a.Tag)
	}
	return a, nil
}

// Archive copies the current settings into the archive under tag (the
// running set's identity). It writes nothing when the archive already holds
// these settings under this tag, so running it again after a power cut
// completes it or does nothing.
func (c *Common) Archive(tag string) (Archive, error) {
	s, err := c.Settings()
	if err != nil {
		return Archive{}, err
	}
	d := s.Digest()
	a := Archive{Settings: s, Digest: d[:], Tag: tag}
	if old, err := c.Archived(); err == nil && old.Tag == tag && bytes.Equal(old.Digest, a.Digest) {
		return old, nil
	}
	b, err := flashrec.Marshal(a)
	if err != nil {
		return Archive{}, fmt.Errorf("common: %w", err)
	}
	if err := c.archive.Replace(b); err != nil {
		return Archive{}, fmt.Errorf("common: archive: %w", err)
	}
	return a, nil
}

// Restore writes the archived settings back as the current settings. It
// reports whether it wrote: when the settings already match the archive it
// writes nothing (idempotent, resumable after a power cut). Readings are
// not touched.
func (c *Common) Restore() (bool, error) {
	a, err := c.Archived()
	if err != nil {
		return false, err
	}
	if cur, err := c.Settings(); err == nil {
		if d := cur.Digest(); bytes.Equal(d[:], a.Digest) {
			return false, nil
		}
	}
	if err := c.WriteSettings(a.Settings); err != nil {
		return false, err
	}
	return true, nil
}

// AppendReading appends r to the readings ring (r.Seq is ignored).
func (c *Common) AppendReading(r Reading) error {
	b, err := flashrec.Marshal(r)
	if err != nil {
		return fmt.Errorf("common: %w", err)
	}
	if err := c.readings.Append(b); err != nil {
		return fmt.Errorf("common: append reading: %w", err)
	}
	return nil
}

// Readings returns the retained readings, oldest first, with the sequence
// numbers of their frames. Frames that do not decode are skipped.
func (c *Common) Readings() []Reading {
	var out []Reading
	for _, fr := range c.readings.Frames() {
		var r Reading
		if decode(fr.Payload, &r) != nil {
			continue
		}
		r.Seq = fr.Seq
		out = append(out, r)
	}
	return out
}

// ReadingsCapacity returns how many readings the ring retains at least.
func (c *Common) ReadingsCapacity() int64 {
	b, _ := flashrec.Marshal(Reading{Interval: 1 << 40, UnixMilli: 1 << 42, Wh: 1 << 40, Samples: 1 << 20})
	per, areas := c.readings.Capacity(len(b))
	return per * int64(areas-1)
}

func decode(b []byte, v any) error {
	if err := flashrec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}
