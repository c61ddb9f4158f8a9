package techtoken

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"meterupd/manifest"
)

// DefaultSkew is the clock skew allowed at both ends of a token's window:
// a meter's RTC drifts a few seconds a day and the technician's laptop is
// not synchronised either.
const DefaultSkew = 5 * time.Minute

// ClockFloor is the earliest time a node's clock can show and be right: a
// clock before it (an RTC reset to its epoch) is not valid, whatever
// ClockValid says.
var ClockFloor = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Verifier checks tokens and login answers on a node.
type Verifier struct {
	keys    *manifest.Keyring
	NodeID  string
	Groups  []string
	Revoked *Revocations // nil: nothing revoked
	Now     func() time.Time
	// ClockValid reports whether the node's clock is known to be right
	// (set from the head-end, NTP or a backed-up RTC). nil: valid when
	// not before ClockFloor.
	ClockValid func() bool
	Skew       time.Duration // 0: DefaultSkew
}

// NewVerifier returns a verifier trusting the technician authority keys
// in tech for node nodeID. packages, when not nil, is the node's package
// keyring: a key in both is refused (ErrRoleOverlap).
func NewVerifier(tech, packages *manifest.Keyring, nodeID string) (*Verifier, error) {
	if tech.Len() == 0 {
		return nil, fmt.Errorf("%w: no technician authority key", ErrSigner)
	}
	if nodeID == "" {
		return nil, errors.New("techtoken: node id required")
	}
	for _, k := range tech.Keys() {
		if _, both := packages.Lookup(k.ID); both {
			return nil, fmt.Errorf("%w: %x", ErrRoleOverlap, k.ID)
		}
	}
	return &Verifier{keys: tech, NodeID: nodeID}, nil
}

// Token checks a token: signature by a technician authority key,
// audience, validity window, revocation. It returns the claims.
func (v *Verifier) Token(token []byte) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(token), MaxTokenSize)
	}
	payload, _, err := manifest.VerifyPayload(token, v.keys)
	switch {
	case errors.Is(err, manifest.ErrUnknownKey), errors.Is(err, manifest.ErrAlgorithm):
		return nil, fmt.Errorf("%w: %w", ErrSigner, err)
	case errors.Is(err, manifest.ErrBadSignature):
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c, err := DecodeClaims(payload)
	if err != nil {
		return nil, err
	}
	if !v.inAudience(c) {
		return nil, fmt.Errorf("%w: node %q, groups %v; token for %v", ErrAudience, v.NodeID, v.Groups, c.Audience)
	}
	if err := v.inWindow(c); err != nil {
		return nil, err
	}
	if v.Revoked.Revoked(c.ID) {
		return nil, fmt.Errorf("%w: %x", ErrRevoked, c.ID)
	}
	return c, nil
}

func (v *Verifier) inAudience(c *Claims) bool {
	for _, a := range c.Audience {
		if a == AudNode+v.NodeID {
			return true
		}
		for _, g := range v.Groups {
			if a == AudGroup+g {
				return true
			}
		}
	}
	return false
}

func (v *Verifier) inWindow(c *Claims) error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if now.Before(ClockFloor) || (v.ClockValid != nil && !v.ClockValid()) {
		return fmt.Errorf("%w: it reads %s", ErrClockInvalid, now.UTC().Format(time.RFC3339))
	}
	skew := v.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	nbf, exp := c.Window()
	if now.Add(skew).Before(nbf) {
		return fmt.Errorf("%w: from %s, node clock %s", ErrNotYetValid, nbf.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Add(-skew).Before(exp) {
		return fmt.Errorf("%w: at %s, node clock %s", ErrExpired, exp.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Login checks a login line's parts: it takes the challenge from ch
// (burnt whatever the outcome), checks the token (Token), the answer's
// signature with the token's key, and that the token grants need.
func (v *Verifier) Login(l Login, ch *Challenges, need ...string) (*Claims, error) {
	if err := ch.Take(l.Nonce); err != nil {
		return nil, err
	}
	c, err := v.Token(l.Token)
	if err != nil {
		return nil, err
	}
	if err := verifyAnswer(c, l, v.NodeID); err != nil {
		return nil, err
	}
	if err := c.Require(need...); err != nil {
		return nil, err
	}
	return c, nil
}

// MaxRevoked bounds a revocation list.
const MaxRevoked = 4096

// Revocations is the set of revoked token ids (cti) the head-end pushes.
// Safe for concurrent use; the zero value and nil are empty.
type Revocations struct {
	mu  sync.RWMutex
	ids map[[CTISize]byte]struct{}
}

// Replace sets the list to ids (the head-end sends the whole list).
func (r *Revocations) Replace(ids [][]byte) error {
	if len(ids) > MaxRevoked {
		return fmt.Errorf("%w: %d revocations, max %d", ErrMalformed, len(ids), MaxRevoked)
	}
	m := make(map[[CTISize]byte]struct{}, len(ids))
	for _, id := range ids {
		if len(id) != CTISize {
			return fmt.Errorf("%w: revoked id of %d bytes, want %d", ErrMalformed, len(id), CTISize)
		}
		m[[CTISize]byte(id)] = struct{}{}
	}
	r.mu.Lock()
	r.ids = m
	r.mu.Unlock()
	return nil
}

// Revoked reports whether cti is revoked.
func (r *Revocations) Revoked(cti []byte) bool {
	if r == nil || len(cti) != CTISize {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.ids[[CTISize]byte(cti)]
	return ok
}

// IDs returns the revoked ids, sorted.
func (r *Revocations) IDs() [][]byte {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([][]byte, 0, len(r.ids))
	for id := range r.ids {
		out = append(out, bytes.Clone(id[:]))
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}
