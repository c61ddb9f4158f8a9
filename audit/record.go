package audit

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"meterupd/internal/flashrec"
)

// Kind is what a legal record records. Stored on flash: never rename a value.
type Kind string

// The legally relevant events (WELMEC 7.2's event log of software updates:
// what happened, which software before and after, who asked, when).
const (
	// KindVerified: a package was received and its signature and digests
	// verified. After is the package's software identity.
	KindVerified Kind = "package-verified"
	// KindActivated: the node is rebooting into a trial of a new set.
	KindActivated Kind = "activated"
	// KindForced: an activation overrode a veto (the head-end's force), or
	// the deferral bound ran out (Detail says which).
	KindForced Kind = "forced"
	// KindCommitted: the trial passed and the new set is the running set.
	KindCommitted Kind = "committed"
	// KindRolledBack: the trial failed; the previous set runs again.
	KindRolledBack Kind = "rolled-back"
	// KindFellBack: the previous set failed too; the factory set F runs.
	KindFellBack Kind = "fell-back"
	// KindRestored: common data (configuration, calibration) was restored
	// from the archive after a rollback or fallback.
	KindRestored Kind = "common-restored"
	// KindKeyChange: a trust anchor (release or technician key) was added,
	// rotated or revoked. Before and After carry the key identities.
	KindKeyChange Kind = "key-change"
	// KindTechnicianLogin: a technician logged in on the optical port.
	// (Failed logins are operational events: the Ring, never this log.)
	KindTechnicianLogin Kind = "technician-login"
)

// Limits of a record's fields: they bound what the agent may append and
// what the decoder accepts, so a record always fits one MaxPayload frame.
const (
	MaxKind    = 32
	MaxText    = 256 // Origin.ID, Detail
	MaxVersion = 64
	MaxDigest  = 64 // bytes (SHA-512 at most)
	// MaxPayload caps a record's CBOR payload.
	MaxPayload = 1024
)

// Identity is one software identity: the set, its version and its digest.
type Identity struct {
	Slot    string `cbor:"1,keyasint,omitempty" json:"slot,omitempty"`
	Version string `cbor:"2,keyasint,omitempty" json:"version,omitempty"`
	Digest  []byte `cbor:"3,keyasint,omitempty" json:"digest,omitempty"`
}

// Origin says who asked: a head-end job, a technician, the node itself.
type Origin struct {
	Kind string `cbor:"1,keyasint,omitempty" json:"kind,omitempty"` // "job", "technician", "local", "node"
	ID   string `cbor:"2,keyasint,omitempty" json:"id,omitempty"`
}

// Record is one legal record.
type Record struct {
	// Seq is the record's sequence number, from 1 (set by Append).
	Seq  uint64 `cbor:"-" json:"seq"`
	Kind Kind   `cbor:"1,keyasint" json:"kind"`
	// UnixMilli is the node's time when the record was made; ClockValid
	// says whether the node's clock was valid then (an invalid time is
	// recorded all the same, and flagged).
	UnixMilli  int64    `cbor:"2,keyasint" json:"unix_ms"`
	ClockValid bool     `cbor:"3,keyasint" json:"clock_valid"`
	Origin     Origin   `cbor:"4,keyasint" json:"origin"`
	Before     Identity `cbor:"5,keyasint" json:"before"`
	After      Identity `cbor:"6,keyasint" json:"after"`
	Detail     string   `cbor:"7,keyasint,omitempty" json:"detail,omitempty"`
	// Prev is the SHA-256 of the previous record's frame (header and
	// payload); all zero for the first record (set by Append).
	Prev []byte `cbor:"8,keyasint" json:"prev"`
}

// check reports the first field outside the limits.
func (r *Record) check() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, a...)...) }
	text := func(name, s string, max int) error {
		if len(s) > max || !utf8.ValidString(s) {
			return bad("%s: %d bytes (limit %d) or not UTF-8", name, len(s), max)
		}
		return nil
	}
	if r.Kind == "" {
		return bad("no kind")
	}
	for _, c := range []struct {
		name, s string
		max     int
	}{
		{"kind", string(r.Kind), MaxKind}, {"origin kind", r.Origin.Kind, MaxKind}, {"origin id", r.Origin.ID, MaxText},
		{"detail", r.Detail, MaxText}, {"before slot", r.Before.Slot, MaxKind}, {"after slot", r.After.Slot, MaxKind},
		{"before version", r.Before.Version, MaxVersion}, {"after version", r.After.Version, MaxVersion},
	} {
		if err := text(c.name, c.s, c.max); err != nil {
			return err
		}
	}
	if len(r.Before.Digest) > MaxDigest || len(r.After.Digest) > MaxDigest {
		return bad("digest longer than %d bytes", MaxDigest)
	}
	if r.Prev != nil && len(r.Prev) != sha256.Size {
		return bad("prev hash of %d bytes", len(r.Prev))
	}
	return nil
}

// DecodeRecord decodes a record payload with the audit decoder's limits and
// checks its fields. It never panics and allocates at most in proportion to
// len(data), which is capped at MaxPayload.
func DecodeRecord(data []byte) (Record, error) {
	if len(data) > MaxPayload {
		return Record{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(data), MaxPayload)
	}
	var r Record
	if err := flashrec.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if len(r.Prev) != sha256.Size {
		return Record{}, fmt.Errorf("%w: prev hash of %d bytes", ErrDecode, len(r.Prev))
	}
	return r, nil
}

// encode returns the CBOR payload of r.
func (r *Record) encode() ([]byte, error) {
	b, err := flashrec.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("audit: encode: %w", err)
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("%w: record of %d bytes, limit %d", ErrInvalid, len(b), MaxPayload)
	}
	return b, nil
}

// Sentinel errors; test with errors.Is.
var (
	// ErrFull: the legal log has no room for the record. Nothing was
	// written; the caller must refuse the update that needed the record.
	ErrFull = errors.New("audit: legal log full")
	// ErrInvalid: a record to append breaks a field limit.
	ErrInvalid = errors.New("audit: invalid record")
	// ErrDecode: a stored record does not decode within the limits.
	ErrDecode = errors.New("audit: cannot decode record")
	// ErrForeign: the partition holds data that is not an audit log.
	ErrForeign = errors.New("audit: foreign data, not an audit log")
	// ErrNewerVersion: a record was written by a newer format version.
	ErrNewerVersion = errors.New("audit: written by a newer version")
	// ErrGeometry: the partition cannot hold the log.
	ErrGeometry = errors.New("audit: unusable partition")
)
