package manifest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SchemaVersion is the base manifest schema: every payload is checked by
// its whole SHA-256. SchemaBlocks adds block digests (Item.BlockSize and
// Item.BlockRoot), so a payload fetched over a slow link is verified block
// by block as it arrives. This package reads and writes both; a manifest
// with another number is rejected with ErrSchemaVersion: a new schema is a
// new number, never a silent reinterpretation. A node advertises the
// schemas it reads in its update request (Request.Schemas), and a
// distributor sends schema 1 to a node that names only 1.
const (
	SchemaVersion = 1
	SchemaBlocks  = 2
)

// Schemas lists the manifest schemas this package reads.
var Schemas = []uint{SchemaVersion, SchemaBlocks}

// Limits on what a manifest may declare. They bound memory on the node and
// keep every length far from 2^31.
const (
	MaxManifestSize = 16 << 10     // bytes of the whole COSE_Sign1
	MaxItems        = 64           // items per manifest
	MaxKeyUpdates   = 8            // key updates per manifest
	MaxListLen      = 16           // device types, prerequisites, checks… per item
	MaxStringLen    = 64           // ids, device types, names of checks
	MaxVersionLen   = 32           // version strings
	MaxPayloadName  = 100          // bytes: fits a ustar name field
	MaxPayloadSize  = 1 << 32      // bytes per payload (4 GiB, larger than any slot)
	DigestSize      = sha256.Size  // every digest is SHA-256
	maxDepth        = 8            // CBOR nesting of arrays/maps/tags
	maxElems        = MaxItems * 2 // largest CBOR array the decoder accepts
	maxPairs        = 32           // largest CBOR map the decoder accepts
)

// Component is what an item updates. Stored as a small integer in CBOR.
type Component uint8

const (
	ComponentSystem Component = 0 // a system set: kernel + root file system slot
	ComponentModem  Component = 1 // radio modem firmware
	ComponentFile   Component = 2 // a file or module in the common data
)

var componentNames = []string{"system", "modem", "file"}

func (c Component) String() string {
	if int(c) < len(componentNames) {
		return componentNames[c]
	}
	return "component(" + strconv.Itoa(int(c)) + ")"
}

// ParseComponent returns the component named s ("system", "modem", "file").
func ParseComponent(s string) (Component, error) {
	for i, n := range componentNames {
		if n == s {
			return Component(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown component %q", ErrInvalid, s)
}

// MarshalText and UnmarshalText give components their names in JSON.
func (c Component) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Component) UnmarshalText(b []byte) error {
	v, err := ParseComponent(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Kind says how an item's payload produces the new image.
type Kind uint8

const (
	KindFull  Kind = 0 // the payload is the image itself
	KindDelta Kind = 1 // the payload is a delta from From to To
)

var kindNames = []string{"full", "delta"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the kind named s ("full", "delta").
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown kind %q", ErrInvalid, s)
}

func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Manifest is the package description data: what the package holds and to
// which nodes each item applies. It is the CBOR payload of a COSE_Sign1.
//
// CBOR map keys are small integers (keyasint) to keep the manifest small on
// radio links. Non-negative keys are critical: a decoder that does not know
// one rejects the manifest (ErrUnknownCritical). Negative keys are optional
// extensions and are ignored by this version.
type Manifest struct {
	Schema   uint   `cbor:"0,keyasint" json:"schema"`
	Sequence uint64 `cbor:"1,keyasint" json:"sequence"` // monotonic, anti-rollback
	// Downgrade, when true, allows items whose target is older than the
	// installed version. It is signed like every other field.
	Downgrade bool   `cbor:"2,keyasint,omitempty" json:"downgrade,omitempty"`
	Expires   int64  `cbor:"3,keyasint,omitempty" json:"expires,omitempty"` // unix seconds; 0 = none
	VendorID  uint32 `cbor:"4,keyasint,omitempty" json:"vendor_id,omitempty"`
	ClassID   uint32 `cbor:"5,keyasint,omitempty" json:"class_id,omitempty"`
	Items     []Item `cbor:"6,keyasint,omitempty" json:"items,omitempty"`
	// Keys are key updates for the node's keyring, signed by the key that
	// signs this manifest (which the node already trusts).
	Keys []KeyUpdate `cbor:"7,keyasint,omitempty" json:"keys,omitempty"`
	// Targets name the version each component should end at. Without one,
	// a component's target is the highest version an item produces.
	Targets []Target `cbor:"8,keyasint,omitempty" json:"targets,omitempty"`
}

// Target is the version a component should end at.
type Target struct {
	Component Component `cbor:"0,keyasint" json:"component"`
	Version   string    `cbor:"1,keyasint" json:"version"`
}

// Item is one payload of the package and where it applies.
type Item struct {
	ID        string    `cbor:"0,keyasint" json:"id"`
	Component Component `cbor:"1,keyasint" json:"component"`
	Kind      Kind      `cbor:"2,keyasint" json:"kind"`
	Format    string    `cbor:"3,keyasint,omitempty" json:"format,omitempty"` // delta format, e.g. "bsdiff"
	From      string    `cbor:"4,keyasint,omitempty" json:"from,omitempty"`   // empty for full images
	To        string    `cbor:"5,keyasint" json:"to"`
	// DeviceTypes lists the device types the item applies to; empty = any.
	DeviceTypes []string `cbor:"6,keyasint,omitempty" json:"device_types,omitempty"`
	// Hardware is the range of hardware revisions; zero = any.
	Hardware HardwareRange `cbor:"7,keyasint,omitempty" json:"hardware,omitzero"`
	Prereqs  []Prereq      `cbor:"8,keyasint,omitempty" json:"prereqs,omitempty"`
	// Step is the item's place in the install path as the builder saw it
	// (1 = first hop). The node builds its own path; Step breaks ties.
	Step    uint32 `cbor:"9,keyasint,omitempty" json:"step,omitempty"`
	Payload string `cbor:"10,keyasint" json:"payload"` // name in the container
	Size    uint64 `cbor:"11,keyasint" json:"size"`    // payload bytes
	Digest  []byte `cbor:"12,keyasint" json:"digest"`  // SHA-256 of the payload
	// SourceDigest is the SHA-256 of the image a delta applies to.
	SourceDigest []byte `cbor:"13,keyasint,omitempty" json:"source_digest,omitempty"`
	// TargetDigest and TargetSize describe the image the item produces.
	TargetDigest []byte     `cbor:"14,keyasint" json:"target_digest"`
	TargetSize   uint64     `cbor:"15,keyasint" json:"target_size"`
	Checks       []Check    `cbor:"16,keyasint,omitempty" json:"checks,omitempty"`
	Thresholds   Thresholds `cbor:"17,keyasint,omitempty" json:"thresholds,omitzero"`
	// BlockSize and BlockRoot (schema 2) describe the payload's block
	// digests: the SHA-256 of every BlockSize bytes of the payload (the
	// last block may be short), concatenated, is the block list, which
	// travels in the package as the entry BlockListName(Payload) just
	// before the payload; BlockRoot is the SHA-256 of that list. Both or
	// neither.
	BlockSize uint32 `cbor:"18,keyasint,omitempty" json:"block_size,omitempty"`
	BlockRoot []byte `cbor:"19,keyasint,omitempty" json:"block_root,omitempty"`
	// Irreversible (modem items only) states that the module cannot
	// return to its previous firmware once it runs this one. A critical
	// key: a node that does not know it refuses the manifest rather than
	// install an update it could not undo. A node refuses a package whose
	// plan puts anything after an irreversible item (agent.ErrIrreversible):
	// such firmware goes alone, in a package of its own.
	Irreversible bool `cbor:"20,keyasint,omitempty" json:"irreversible,omitempty"`
	// Revert (modem items only; issue 15) names the item of this manifest
	// whose payload is the module maker's update file back from this
	// item's version to the one the module ran before (that item's To):
	// when a later item fails or the system set is rolled back, the agent
	// installs it and confirms the module reports that version again. The
	// named item is never planned on its own (it leads to an older
	// version than this one). An optional key (negative): an agent that
	// does not know it ignores it, streams the file past, and keeps the
	// module on its new firmware, as without it.
	Revert string `cbor:"-1,keyasint,omitempty" json:"revert,omitempty"`
}

// HardwareRange is an inclusive range of hardware revisions plus optional
// variants (e.g. memory sizes). Max 0 means no upper bound.
type HardwareRange struct {
	Min      uint32   `cbor:"0,keyasint,omitempty" json:"min,omitempty"`
	Max      uint32   `cbor:"1,keyasint,omitempty" json:"max,omitempty"`
	Variants []string `cbor:"2,keyasint,omitempty" json:"variants,omitempty"`
}

// Prereq is a version a component must have reached (installed, or
// reached earlier in the same install plan) before the item may apply. It
// names either a component and minimum version, or another item of the
// manifest by id (meaning: that item's component at its To version).
// Select resolves item references, so the steps of a Plan carry
// Component and Version filled in.
type Prereq struct {
	Component Component `cbor:"0,keyasint,omitempty" json:"component"`
	Version   string    `cbor:"1,keyasint,omitempty" json:"version,omitempty"` // minimum version
	Item      string    `cbor:"2,keyasint,omitempty" json:"item,omitempty"`
}

// Check is one validation criterion the node evaluates before installing
// the item (see package validate for the kinds). A failed check adds its
// Weight (1 when zero) to the item's failure count.
type Check struct {
	Kind   string `cbor:"0,keyasint" json:"kind"`
	Arg    string `cbor:"1,keyasint,omitempty" json:"arg,omitempty"`
	Value  uint64 `cbor:"2,keyasint,omitempty" json:"value,omitempty"`
	Weight uint32 `cbor:"3,keyasint,omitempty" json:"weight,omitempty"`
}

// Thresholds turn an item's failure count into a compliance level: count
// ≥ Stop → level 3 (stop the whole update); else count ≥ Skip (Skip > 0) →
// level 2 (skip the item); else level 1 (continue). Stop 0 means 1: by
// default any failed check stops the update.
type Thresholds struct {
	Skip uint32 `cbor:"0,keyasint,omitempty" json:"skip,omitempty"`
	Stop uint32 `cbor:"1,keyasint,omitempty" json:"stop,omitempty"`
}

// KeyOp is what a key update does.
type KeyOp uint8

const (
	KeyAdd    KeyOp = 0
	KeyRetire KeyOp = 1
)

// KeyUpdate adds a public key to, or retires one from, the node's keyring.
type KeyUpdate struct {
	Op     KeyOp  `cbor:"0,keyasint" json:"op"`
	KID    []byte `cbor:"1,keyasint" json:"kid"`
	Public []byte `cbor:"2,keyasint,omitempty" json:"public,omitempty"` // PKIX DER, for KeyAdd
}

// Item returns the item with the given id.
func (m *Manifest) Item(id string) (Item, bool) {
	for _, it := range m.Items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

// Validate checks the invariants a decoded manifest must hold beyond its
// CBOR shape: schema version, lengths, digests, version strings, payload
// names, unique ids and payload names. Decode calls it.
func (m *Manifest) Validate() error {
	if m.Schema != SchemaVersion && m.Schema != SchemaBlocks {
		return fmt.Errorf("%w: %d (this node reads %d and %d)", ErrSchemaVersion, m.Schema, SchemaVersion, SchemaBlocks)
	}
	if len(m.Items) > MaxItems {
		return invalid("items", "%d items, max %d", len(m.Items), MaxItems)
	}
	if len(m.Keys) > MaxKeyUpdates {
		return invalid("keys", "%d key updates, max %d", len(m.Keys), MaxKeyUpdates)
	}
	if len(m.Items) == 0 && len(m.Keys) == 0 {
		return invalid("items", "no items and no key updates")
	}
	if len(m.Targets) > MaxListLen {
		return invalid("targets", "too many")
	}
	for i, t := range m.Targets {
		if err := checkVersion(t.Version); err != nil {
			return invalid(fmt.Sprintf("targets[%d].version", i), "%v", err)
		}
		if t.Component > ComponentFile {
			return invalid(fmt.Sprintf("targets[%d].component", i), "unknown %d", t.Component)
		}
	}
	ids := map[string]bool{}
	names := map[string]bool{}
	for i, it := range m.Items {
		f := func(name string) string { return fmt.Sprintf("items[%d].%s", i, name) }
		if err := checkString(it.ID); err != nil || it.ID == "" {
			return invalid(f("id"), "bad id %q", it.ID)
		}
		if ids[it.ID] {
			return invalid(f("id"), "duplicate id %q", it.ID)
		}
		ids[it.ID] = true
		if it.Component > ComponentFile {
			return invalid(f("component"), "unknown %d", it.Component)
		}
		if it.Irreversible && it.Component != ComponentModem {
			return invalid(f("irreversible"), "only a modem firmware item can be irreversible")
		}
		if err := m.checkRevert(it); err != nil {
			return invalid(f("revert"), "%v", err)
		}
		switch it.Kind {
		case KindFull:
			if it.From != "" || it.SourceDigest != nil {
				return invalid(f("from"), "full image with a source")
			}
		case KindDelta:
			if err := checkVersion(it.From); err != nil {
				return invalid(f("from"), "%v", err)
			}
			if len(it.SourceDigest) != DigestSize {
				return invalid(f("source_digest"), "want %d bytes, have %d", DigestSize, len(it.SourceDigest))
			}
			if err := checkString(it.Format); err != nil {
				return invalid(f("format"), "%v", err)
			}
		default:
			return invalid(f("kind"), "unknown %d", it.Kind)
		}
		if err := checkVersion(it.To); err != nil {
			return invalid(f("to"), "%v", err)
		}
		if err := checkStrings(it.DeviceTypes); err != nil {
			return invalid(f("device_types"), "%v", err)
		}
		if err := checkStrings(it.Hardware.Variants); err != nil {
			return invalid(f("hardware.variants"), "%v", err)
		}
		if it.Hardware.Max != 0 && it.Hardware.Max < it.Hardware.Min {
			return invalid(f("hardware"), "max %d < min %d", it.Hardware.Max, it.Hardware.Min)
		}
		if len(it.Prereqs) > MaxListLen {
			return invalid(f("prereqs"), "too many")
		}
		for j, p := range it.Prereqs {
			f := fmt.Sprintf("items[%d].prereqs[%d]", i, j)
			if p.Item != "" {
				if p.Item == it.ID {
					return invalid(f, "item %q needs itself", p.Item)
				}
				if _, ok := m.Item(p.Item); !ok || p.Version != "" {
					return invalid(f, "item %q: not in the manifest, or with a version", p.Item)
				}
				continue
			}
			if err := checkVersion(p.Version); err != nil || p.Component > ComponentFile {
				return invalid(f, "bad prerequisite")
			}
		}
		if err := CheckPayloadName(it.Payload); err != nil {
			return &FieldError{Field: f("payload"), Err: err}
		}
		if names[it.Payload] {
			return invalid(f("payload"), "duplicate payload name %q", it.Payload)
		}
		names[it.Payload] = true
		if it.Size > MaxPayloadSize || it.TargetSize > MaxPayloadSize {
			return invalid(f("size"), "over %d bytes", uint64(MaxPayloadSize))
		}
		if len(it.Digest) != DigestSize {
			return invalid(f("digest"), "want %d bytes, have %d", DigestSize, len(it.Digest))
		}
		if len(it.TargetDigest) != DigestSize {
			return invalid(f("target_digest"), "want %d bytes, have %d", DigestSize, len(it.TargetDigest))
		}
		if err := checkBlocks(m.Schema, it); err != nil {
			return &FieldError{Field: f("block_size"), Err: ErrInvalid, Msg: err.Error()}
		}
		if len(it.Checks) > MaxListLen {
			return invalid(f("checks"), "too many")
		}
		for j, c := range it.Checks {
			if err := checkString(c.Kind); err != nil || c.Kind == "" {
				return invalid(fmt.Sprintf("items[%d].checks[%d].kind", i, j), "bad kind %q", c.Kind)
			}
			if err := checkString(c.Arg); err != nil {
				return invalid(fmt.Sprintf("items[%d].checks[%d].arg", i, j), "%v", err)
			}
		}
	}
	for i, k := range m.Keys {
		if err := k.validate(); err != nil {
			return &FieldError{Field: fmt.Sprintf("keys[%d]", i), Err: ErrKeyUpdate, Msg: err.Error()}
		}
	}
	return nil
}

// checkRevert checks an item's Revert: a modem item that can be undone
// names another modem item of the manifest that leads back to an older
// version and is not itself undone.
func (m *Manifest) checkRevert(it Item) error {
	if it.Revert == "" {
		return nil
	}
	switch {
	case it.Component != ComponentModem:
		return errors.New("only a modem firmware item has a revert file")
	case it.Irreversible:
		return errors.New("an irreversible item has no revert file")
	case it.Revert == it.ID:
		return errors.New("an item is not its own revert file")
	}
	r, ok := m.Item(it.Revert)
	switch {
	case !ok:
		return fmt.Errorf("item %q is not in the manifest", it.Revert)
	case r.Component != ComponentModem:
		return fmt.Errorf("item %q is not a modem firmware item", it.Revert)
	case r.Revert != "":
		return fmt.Errorf("item %q has a revert file of its own", it.Revert)
	case checkVersion(r.To) != nil || CompareVersions(r.To, it.To) >= 0:
		return fmt.Errorf("item %q leads to %q, not to a version older than %q", it.Revert, r.To, it.To)
	}
	return nil
}

func checkString(s string) error {
	if len(s) > MaxStringLen {
		return fmt.Errorf("%d bytes, max %d", len(s), MaxStringLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character in %q", s)
		}
	}
	return nil
}

func checkStrings(ss []string) error {
	if len(ss) > MaxListLen {
		return fmt.Errorf("%d entries, max %d", len(ss), MaxListLen)
	}
	for _, s := range ss {
		if err := checkString(s); err != nil {
			return err
		}
	}
	return nil
}

// CheckPayloadName reports whether name may name a payload in a package:
// a single relative path element of at most MaxPayloadName bytes from
// [A-Za-z0-9._+-], not "." or "..", not starting with a dot. Directories,
// absolute paths and "../" are refused so that no consumer can ever turn a
// name into a path outside its store.
func CheckPayloadName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrPayloadName)
	}
	if len(name) > MaxPayloadName {
		return fmt.Errorf("%w: %d bytes, max %d", ErrPayloadName, len(name), MaxPayloadName)
	}
	if name == ManifestName || name == UnsignedManifestName {
		return fmt.Errorf("%w: %q is reserved", ErrPayloadName, name)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %q starts with a dot", ErrPayloadName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+'
		if !ok {
			return fmt.Errorf("%w: %q: byte %q at %d not allowed", ErrPayloadName, name, c, i)
		}
	}
	return nil
}

// checkVersion accepts a non-empty version of at most MaxVersionLen bytes
// of [0-9A-Za-z.+-_] whose numeric dot-separated parts fit in 32 bits.
func checkVersion(v string) error {
	if v == "" {
		return fmt.Errorf("empty version")
	}
	if len(v) > MaxVersionLen {
		return fmt.Errorf("version is %d bytes, max %d", len(v), MaxVersionLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+'
		if !ok {
			return fmt.Errorf("version %q: byte %q not allowed", v, c)
		}
	}
	for _, p := range strings.Split(v, ".") {
		if n := leadingDigits(p); n > 9 {
			return fmt.Errorf("version %q: number too long", v)
		}
	}
	return nil
}

func leadingDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// CompareVersions compares two versions part by part (split on '.'): parts
// are compared as numbers by their leading digits, then by the rest as
// strings. "1.10" > "1.9"; "2" < "2.0". It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		if i >= len(pa) {
			return -1
		}
		if i >= len(pb) {
			return 1
		}
		if c := comparePart(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return 0
}

func comparePart(a, b string) int {
	na, nb := leadingDigits(a), leadingDigits(b)
	// Compare numbers without parsing: strip leading zeros, longer is larger.
	da, db := strings.TrimLeft(a[:na], "0"), strings.TrimLeft(b[:nb], "0")
	if len(da) != len(db) {
		if len(da) < len(db) {
			return -1
		}
		return 1
	}
	if c := strings.Compare(da, db); c != 0 {
		return c
	}
	return strings.Compare(a[na:], b[nb:])
}
