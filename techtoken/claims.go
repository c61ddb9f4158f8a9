package techtoken

import (
	"crypto"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"meterupd/manifest"
)

// Limits of a token.
const (
	MaxTokenSize = 2048 // bytes of the COSE_Sign1
	MaxAudience  = 64   // entries of aud
	MaxScopes    = 16
	MaxText      = 128 // bytes of iss, sub, one aud entry, one scope
	CTISize      = 16
	// MaxValidity bounds exp - nbf: a lost laptop must not open meters
	// for months. Issue and Verify both refuse longer windows.
	MaxValidity = 31 * 24 * time.Hour
)

// Scopes a token may grant.
const (
	ScopeInstall  = "install"
	ScopeActivate = "activate"
	ScopeRollback = "rollback"
	ScopeCommit   = "commit"
)

// KnownScopes are the scopes Issue accepts. A node ignores scopes it does
// not know (a newer utility tool), it never grants them.
var KnownScopes = []string{ScopeInstall, ScopeActivate, ScopeRollback, ScopeCommit}

// Audience prefixes.
const (
	AudNode  = "node:"
	AudGroup = "group:"
)

// Claims is the CWT claims set of a token. The integer keys are RFC
// 8392's, RFC 8747's (cnf) and RFC 9200's (scope): never renumber.
type Claims struct {
	Issuer    string       `cbor:"1,keyasint,omitempty"`
	Subject   string       `cbor:"2,keyasint"`
	Audience  []string     `cbor:"3,keyasint"`
	Expires   int64        `cbor:"4,keyasint"`
	NotBefore int64        `cbor:"5,keyasint"`
	IssuedAt  int64        `cbor:"6,keyasint"`
	ID        []byte       `cbor:"7,keyasint"`
	Confirm   Confirmation `cbor:"8,keyasint"`
	Scope     string       `cbor:"9,keyasint"`
}

// Confirmation is the cnf claim: the technician's public key as a
// COSE_Key (RFC 8747 section 3.2).
type Confirmation struct {
	Key cbor.RawMessage `cbor:"1,keyasint"`
}

var (
	claimsDec cbor.DecMode
	claimsEnc cbor.EncMode
)

func init() {
	var err error
	claimsDec, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  MaxAudience,
		MaxMapPairs:       16,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic("techtoken: cbor decode options: " + err.Error())
	}
	claimsEnc, err = cbor.EncOptions{Sort: cbor.SortCoreDeterministic, IndefLength: cbor.IndefLengthForbidden}.EncMode()
	if err != nil {
		panic("techtoken: cbor encode options: " + err.Error())
	}
}

// DecodeClaims parses a claims set (the payload of a token) with the
// package's limits and checks it (Validate). It does not check any
// signature: Verifier.Token does that first.
func DecodeClaims(b []byte) (*Claims, error) {
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(b), MaxTokenSize)
	}
	var keys map[int64]cbor.RawMessage
	if err := claimsDec.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for k := range keys {
		if k < 1 || k > 9 {
			return nil, fmt.Errorf("%w: unknown claim %d", ErrMalformed, k)
		}
	}
	var c Claims
	if err := claimsDec.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the claims' shape: required claims present, sizes
// within the limits, a window no longer than MaxValidity, a public key
// (not a private one) in cnf.
func (c *Claims) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if c.Subject == "" || len(c.Subject) > MaxText || len(c.Issuer) > MaxText {
		return bad("sub must be 1 to %d bytes, iss at most %d", MaxText, MaxText)
	}
	if len(c.Audience) == 0 || len(c.Audience) > MaxAudience {
		return bad("aud must hold 1 to %d entries", MaxAudience)
	}
	for _, a := range c.Audience {
		name, ok := strings.CutPrefix(a, AudNode)
		if !ok {
			name, ok = strings.CutPrefix(a, AudGroup)
		}
		if !ok || name == "" || len(a) > MaxText {
			return bad("aud entry %q is not node:ID or group:NAME", a)
		}
	}
	if len(c.ID) != CTISize {
		return bad("cti is %d bytes, want %d", len(c.ID), CTISize)
	}
	if c.NotBefore <= 0 || c.Expires <= c.NotBefore || c.IssuedAt <= 0 {
		return bad("nbf, exp, iat must be set, exp after nbf")
	}
	if time.Duration(c.Expires-c.NotBefore)*time.Second > MaxValidity {
		return fmt.Errorf("%w: %v, max %v", ErrValidity, time.Duration(c.Expires-c.NotBefore)*time.Second, MaxValidity)
	}
	sc := c.Scopes()
	if len(sc) == 0 || len(sc) > MaxScopes || len(c.Scope) > MaxScopes*MaxText {
		return bad("scope must hold 1 to %d scopes", MaxScopes)
	}
	if _, err := c.TechKey(); err != nil {
		return err
	}
	return nil
}

// Scopes returns the granted scopes.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// Allows reports whether the token grants scope.
func (c *Claims) Allows(scope string) bool {
	for _, s := range c.Scopes() {
		if s == scope {
			return true
		}
	}
	return false
}

// Require returns ErrScope unless the token grants every scope in need.
func (c *Claims) Require(need ...string) error {
	for _, n := range need {
		if !c.Allows(n) {
			return fmt.Errorf("%w %q (token grants %q)", ErrScope, n, c.Scope)
		}
	}
	return nil
}

// TechKey returns the technician's public key from cnf: Ed25519 or P-256,
// and no private part.
func (c *Claims) TechKey() (crypto.PublicKey, error) {
	if len(c.Confirm.Key) == 0 {
		return nil, fmt.Errorf("%w: no cnf key", ErrMalformed)
	}
	var k cose.Key
	if err := k.UnmarshalCBOR(c.Confirm.Key); err != nil {
		return nil, fmt.Errorf("%w: cnf: %v", ErrMalformed, err)
	}
	if _, _, d := k.OKP(); len(d) != 0 {
		return nil, fmt.Errorf("%w: cnf carries a private key", ErrMalformed)
	}
	if _, _, _, d := k.EC2(); len(d) != 0 {
		return nil, fmt.Errorf("%w: cnf carries a private key", ErrMalformed)
	}
	pub, err := k.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: cnf: %v", ErrMalformed, err)
	}
	if _, err := answerAlg(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// answerAlg is the algorithm a technician key signs answers with.
func answerAlg(pub crypto.PublicKey) (cose.Algorithm, error) {
	if _, err := manifest.KeyID(pub); err != nil { // Ed25519 or P-256 only
		return 0, fmt.Errorf("%w: technician key: %v", ErrMalformed, err)
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		return cose.AlgorithmEdDSA, nil
	}
	return cose.AlgorithmES256, nil
}

// Window returns the validity window.
func (c *Claims) Window() (nbf, exp time.Time) {
	return time.Unix(c.NotBefore, 0).UTC(), time.Unix(c.Expires, 0).UTC()
}
