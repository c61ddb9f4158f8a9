package techtoken

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Challenge limits.
const (
	NonceSize = 16
	// ChallengeTTL is how long a challenge may be answered: time to run
	// meterpkg token answer and paste the line, not to try again later.
	ChallengeTTL = 2 * time.Minute
	// MaxPending challenges are kept; a new one pushes out the oldest.
	MaxPending = 4
	// MaxSignature is the largest answer signature (ES256: 64, EdDSA: 64).
	MaxSignature = 132
	// MaxLoginLine bounds the login line a console accepts.
	MaxLoginLine = len("login ") + 2*NonceSize + 1 + (MaxTokenSize*4+2)/3 + 1 + (MaxSignature*4+2)/3
)

// Login is a parsed login line.
type Login struct {
	Nonce     []byte
	Token     []byte
	Signature []byte
}

var b64 = base64.RawURLEncoding

// FormatLogin returns the line "login NONCE-HEX TOKEN SIGNATURE" (token
// and signature in base64url without padding).
func FormatLogin(l Login) string {
	return "login " + hex.EncodeToString(l.Nonce) + " " + b64.EncodeToString(l.Token) + " " + b64.EncodeToString(l.Signature)
}

// ParseLogin parses a login line as FormatLogin writes it. Surrounding
// spaces and a trailing CR (a terminal's Enter) are allowed; anything else
// off the format is ErrLine. Sizes are checked before decoding.
func ParseLogin(line string) (Login, error) {
	if len(line) > MaxLoginLine+2 {
		return Login{}, fmt.Errorf("%w: %d bytes, max %d", ErrLine, len(line), MaxLoginLine)
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "login" {
		return Login{}, fmt.Errorf("%w: want: login NONCE TOKEN SIGNATURE", ErrLine)
	}
	if len(f[1]) != 2*NonceSize || b64.DecodedLen(len(f[2])) > MaxTokenSize || b64.DecodedLen(len(f[3])) > MaxSignature {
		return Login{}, fmt.Errorf("%w: field sizes", ErrLine)
	}
	var l Login
	var err error
	if l.Nonce, err = hex.DecodeString(f[1]); err != nil {
		return Login{}, fmt.Errorf("%w: challenge: %v", ErrLine, err)
	}
	if l.Token, err = b64.DecodeString(f[2]); err != nil || len(l.Token) == 0 {
		return Login{}, fmt.Errorf("%w: token: %v", ErrLine, err)
	}
	if l.Signature, err = b64.DecodeString(f[3]); err != nil || len(l.Signature) == 0 {
		return Login{}, fmt.Errorf("%w: signature: %v", ErrLine, err)
	}
	return l, nil
}

// Challenges are the node's outstanding login challenges: random, single
// use, short-lived. They live in memory only: a restart forgets them,
// which only makes a technician ask again. Safe for concurrent use.
type Challenges struct {
	Now  func() time.Time // nil: time.Now
	Rand io.Reader        // nil: crypto/rand
	TTL  time.Duration    // 0: ChallengeTTL

	mu      sync.Mutex
	pending []pending
}

type pending struct {
	nonce   []byte
	expires time.Time
}

func (c *Challenges) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// New returns a fresh challenge.
func (c *Challenges) New() ([]byte, error) {
	r := c.Rand
	if r == nil {
		r = rand.Reader
	}
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(r, nonce); err != nil {
		return nil, fmt.Errorf("techtoken: challenge: %w", err)
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = ChallengeTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= MaxPending {
		c.pending = c.pending[1:]
	}
	c.pending = append(c.pending, pending{nonce: nonce, expires: c.now().Add(ttl)})
	return nonce, nil
}

// Take consumes a challenge: it is gone after this call, answered right or
// wrong. A challenge never issued, already taken or pushed out is ErrNonce;
// one past its TTL is ErrNonceExpired.
func (c *Challenges) Take(nonce []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pending {
		if len(nonce) == NonceSize && subtle.ConstantTimeCompare(p.nonce, nonce) == 1 {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			if !c.now().Before(p.expires) {
				return ErrNonceExpired
			}
			return nil
		}
	}
	return ErrNonce
}
