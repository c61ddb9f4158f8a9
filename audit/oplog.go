package audit

import (
	"fmt"
	"unicode/utf8"

	"meterupd/boards/hw"
	"meterupd/internal/flashrec"
)

// OpKind is an operational event's kind. Stored: never rename a value.
type OpKind string

// Operational events: many, cheap, and of no legal weight. They go to the
// OpLog, which overwrites its oldest entries, so that nobody at the optical
// port (or a chatty local process) can fill the legal log or block an update.
const (
	OpVetoAsked    OpKind = "veto-asked"
	OpVetoAnswered OpKind = "veto-answered"
	OpLoginFailed  OpKind = "login-failed"
	OpLockout      OpKind = "lockout"
)

// Event is one operational event.
type Event struct {
	Seq        uint64 `cbor:"-" json:"seq"`
	Kind       OpKind `cbor:"1,keyasint" json:"kind"`
	UnixMilli  int64  `cbor:"2,keyasint" json:"unix_ms"`
	ClockValid bool   `cbor:"3,keyasint" json:"clock_valid"`
	Origin     Origin `cbor:"4,keyasint" json:"origin"`
	Detail     string `cbor:"5,keyasint,omitempty" json:"detail,omitempty"`
}

// MaxEventPayload caps an event's CBOR payload.
const MaxEventPayload = 512

var opMagic = [4]byte{'M', 'U', 'O', 'P'}

// OpLog is the bounded operational ring on its own partition
// (hw.PartOpLog): areas of erase blocks used in turn; when the newest area
// is full the oldest is erased. Append never reports "full".
type OpLog struct{ r *flashrec.Ring }

// OpenOpLog reads the ring on f; it never writes.
func OpenOpLog(f hw.Flash) (*OpLog, error) {
	r, err := flashrec.OpenRing(f, flashrec.RingConfig{Magic: opMagic, Version: 1, MaxPayload: MaxEventPayload})
	if err != nil {
		return nil, fmt.Errorf("audit: oplog: %w", err)
	}
	return &OpLog{r: r}, nil
}

// Append records e. Errors are flash errors; the caller reports them and
// carries on (an update never waits for the operational log).
func (o *OpLog) Append(e Event) error {
	for _, s := range []string{string(e.Kind), e.Origin.Kind, e.Origin.ID, e.Detail} {
		if len(s) > MaxText || !utf8.ValidString(s) {
			return fmt.Errorf("%w: event field of %d bytes", ErrInvalid, len(s))
		}
	}
	if e.Kind == "" {
		return fmt.Errorf("%w: event without kind", ErrInvalid)
	}
	b, err := flashrec.Marshal(&e)
	if err != nil {
		return fmt.Errorf("audit: oplog: %w", err)
	}
	if err := o.r.Append(b); err != nil {
		return fmt.Errorf("audit: oplog: %w", err)
	}
	return nil
}

// Events returns the retained events, oldest first. Entries that do not
// decode are skipped.
func (o *OpLog) Events() []Event {
	var out []Event
	for _, fr := range o.r.Frames() {
		e, err := DecodeEvent(fr.Payload)
		if err != nil {
			continue
		}
		e.Seq = fr.Seq
		out = append(out, e)
	}
	return out
}

// Capacity returns how many events of n payload bytes the ring retains at
// least (all areas but the one being refilled) and at most.
func (o *OpLog) Capacity(n int) (least, most int64) {
	per, areas := o.r.Capacity(n)
	return per * int64(areas-1), per * int64(areas)
}

// DecodeEvent decodes an event payload within the decoder's limits.
func DecodeEvent(data []byte) (Event, error) {
	if len(data) > MaxEventPayload {
		return Event{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDecode, len(data), MaxEventPayload)
	}
	var e Event
	if err := flashrec.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return e, nil
}
