package manifest

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every rejection of a package wraps one of them, so the
// agent can report a stable reason code; the message adds the detail.
var (
	// Signature and keys.
	ErrUnsigned           = errors.New("manifest: package is not signed")
	ErrMalformedSignature = errors.New("manifest: malformed COSE_Sign1")
	ErrHeader             = errors.New("manifest: forbidden or missing COSE header parameter")
	ErrUnknownKey         = errors.New("manifest: unknown key id")
	ErrAlgorithm          = errors.New("manifest: algorithm not allowed for key")
	ErrBadSignature       = errors.New("manifest: signature does not verify")
	ErrKeyUpdate          = errors.New("manifest: invalid key update")

	// Manifest contents.
	ErrTooLarge        = errors.New("manifest: manifest too large")
	ErrMalformed       = errors.New("manifest: malformed CBOR")
	ErrUnknownCritical = errors.New("manifest: unknown critical field")
	ErrSchemaVersion   = errors.New("manifest: unsupported schema version")
	ErrInvalid         = errors.New("manifest: invalid manifest")

	// Anti-rollback and selection.
	ErrReplay       = errors.New("manifest: package sequence already seen (replay)")
	ErrRollback     = errors.New("manifest: package sequence older than floor (rollback)")
	ErrDowngrade    = errors.New("manifest: version downgrade without signed downgrade flag")
	ErrExpired      = errors.New("manifest: manifest expired")
	ErrNotForDevice = errors.New("manifest: no item for this device type and hardware")
	ErrGap          = errors.New("manifest: no install path to target version (gap)")
	ErrPrerequisite = errors.New("manifest: missing prerequisite")

	// Container.
	ErrContainer      = errors.New("manifest: malformed package container")
	ErrTruncated      = errors.New("manifest: package truncated")
	ErrTrailingData   = errors.New("manifest: data after end of package")
	ErrPayloadName    = errors.New("manifest: bad payload name")
	ErrUnlisted       = errors.New("manifest: payload not listed in manifest")
	ErrMissingPayload = errors.New("manifest: listed payload missing from package")
	ErrPayloadSize    = errors.New("manifest: payload size differs from manifest")
	ErrDigest         = errors.New("manifest: payload digest mismatch")
)

// FieldError names the offending field of a manifest that decoded but is
// not valid, e.g. "items[2].digest".
type FieldError struct {
	Field string
	Err   error // a sentinel above
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%v: %s", e.Err, e.Field)
	}
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Msg)
}

func (e *FieldError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: ErrInvalid, Msg: fmt.Sprintf(format, args...)}
}
