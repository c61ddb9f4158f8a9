package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// The decoder's limits are set explicitly (not left to the library's
// defaults) so that a hostile manifest is refused fast with bounded memory:
// 10k nesting levels, an array header claiming 2^40 elements or a map of
// 10^6 pairs all fail on the header, before anything is allocated.
var (
	decMode cbor.DecMode
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF, // two digests for one item: reject
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   maxDepth,
		MaxArrayElements:  maxElems,
		MaxMapPairs:       maxPairs,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic("manifest: cbor decode options: " + err.Error())
	}
	encMode, err = cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		IndefLength:   cbor.IndefLengthForbidden,
		ShortestFloat: cbor.ShortestFloat16,
	}.EncMode()
	if err != nil {
		panic("manifest: cbor encode options: " + err.Error())
	}
}

// Decode parses and validates a manifest payload (the CBOR inside the
// COSE_Sign1). Callers on the node never call it on unverified bytes:
// Verify and OpenPackage call it only after the signature checks out.
//
// It rejects: input over MaxManifestSize, malformed CBOR, trailing bytes,
// indefinite lengths, tags, duplicate map keys, nesting deeper than the
// schema needs, unknown critical (non-negative) keys at any level, another
// schema version, and any field that breaks Validate. On error it returns
// nil: no partly decoded manifest escapes.
func Decode(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(data), MaxManifestSize)
	}
	var m Manifest
	if err := decMode.Unmarshal(data, &m); err != nil {
		return nil, cborErr(err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Encode validates m and returns its canonical CBOR encoding (core
// deterministic: sorted keys, shortest lengths), the payload to sign.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(b), MaxManifestSize)
	}
	return b, nil
}

// cborErr maps a decoder error to ErrMalformed, keeping our own sentinels.
func cborErr(err error) error {
	var fe *FieldError
	if errors.Is(err, ErrUnknownCritical) || errors.Is(err, ErrMalformed) || errors.As(err, &fe) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// Each schema struct decodes in two passes over its own bytes: first as a
// map of integer keys to check that every non-negative key is known
// (critical), then into the struct. The library ignores the negative keys.

type (
	plainManifest  Manifest
	plainItem      Item
	plainHardware  HardwareRange
	plainPrereq    Prereq
	plainCheck     Check
	plainThreshold Thresholds
	plainKeyUpdate KeyUpdate
	plainTarget    Target
)

func (m *Manifest) UnmarshalCBOR(b []byte) error {
	return strict(b, (*plainManifest)(m), "manifest")
}
func (m *Item) UnmarshalCBOR(b []byte) error { return strict(b, (*plainItem)(m), "item") }
func (m *HardwareRange) UnmarshalCBOR(b []byte) error {
	return strict(b, (*plainHardware)(m), "hardware")
}
func (m *Prereq) UnmarshalCBOR(b []byte) error { return strict(b, (*plainPrereq)(m), "prereq") }
func (m *Check) UnmarshalCBOR(b []byte) error  { return strict(b, (*plainCheck)(m), "check") }
func (m *Thresholds) UnmarshalCBOR(b []byte) error {
	return strict(b, (*plainThreshold)(m), "thresholds")
}
func (m *KeyUpdate) UnmarshalCBOR(b []byte) error {
	return strict(b, (*plainKeyUpdate)(m), "key")
}
func (m *Target) UnmarshalCBOR(b []byte) error { return strict(b, (*plainTarget)(m), "target") }

func strict(b []byte, v any, where string) error {
	var keys map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
	}
	known := knownKeys(reflect.TypeOf(v).Elem())
	for k := range keys {
		if k >= 0 && !known[k] {
			return fmt.Errorf("%w: %s key %d", ErrUnknownCritical, where, k)
		}
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return cborErr(err)
	}
	return nil
}

var knownCache sync.Map // reflect.Type → map[int64]bool

// knownKeys returns the keyasint labels of struct type t.
func knownKeys(t reflect.Type) map[int64]bool {
	if k, ok := knownCache.Load(t); ok {
		return k.(map[int64]bool)
	}
	known := map[int64]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("cbor")
		name, _, _ := strings.Cut(tag, ",")
		if n, err := strconv.ParseInt(name, 10, 64); err == nil {
			known[n] = true
		}
	}
	knownCache.Store(t, known)
	return known
}
