package techtoken

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/veraison/go-cose"

	"meterupd/manifest"
)

// Request is what the utility's tool puts in a token.
type Request struct {
	Issuer    string
	Subject   string   // the technician
	Nodes     []string // node ids
	Groups    []string // group names
	Scopes    []string // KnownScopes
	TechKey   crypto.PublicKey
	NotBefore time.Time
	Valid     time.Duration // exp = NotBefore + Valid, at most MaxValidity
	Now       time.Time     // iat
	Rand      io.Reader     // cti; nil: crypto/rand
}

// Issue makes a token for req signed by the technician authority key.
func Issue(req Request, authority crypto.Signer) ([]byte, error) {
	for _, s := range req.Scopes {
		if !slices.Contains(KnownScopes, s) {
			return nil, fmt.Errorf("%w: unknown scope %q (known: %v)", ErrMalformed, s, KnownScopes)
		}
	}
	key, err := cose.NewKeyFromPublic(req.TechKey)
	if err != nil {
		return nil, fmt.Errorf("%w: technician key: %v", ErrMalformed, err)
	}
	keyCBOR, err := key.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("%w: technician key: %v", ErrMalformed, err)
	}
	r := req.Rand
	if r == nil {
		r = rand.Reader
	}
	cti := make([]byte, CTISize)
	if _, err := io.ReadFull(r, cti); err != nil {
		return nil, fmt.Errorf("techtoken: token id: %w", err)
	}
	c := &Claims{
		Issuer: req.Issuer, Subject: req.Subject,
		NotBefore: req.NotBefore.Unix(), Expires: req.NotBefore.Add(req.Valid).Unix(), IssuedAt: req.Now.Unix(),
		ID: cti, Confirm: Confirmation{Key: keyCBOR},
	}
	for _, n := range req.Nodes {
		c.Audience = append(c.Audience, AudNode+n)
	}
	for _, g := range req.Groups {
		c.Audience = append(c.Audience, AudGroup+g)
	}
	for i, s := range req.Scopes {
		if i > 0 {
			c.Scope += " "
		}
		c.Scope += s
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	payload, err := claimsEnc.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("techtoken: encode: %w", err)
	}
	tok, err := manifest.Sign(payload, authority)
	if err != nil {
		return nil, err
	}
	if len(tok) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d (fewer nodes: use a group)", ErrTooLarge, len(tok), MaxTokenSize)
	}
	return tok, nil
}

// ClaimsUnverified returns the claims of a token without checking its
// signature: for the technician's tool, never on a node.
func ClaimsUnverified(token []byte) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(token), MaxTokenSize)
	}
	payload, _, err := manifest.PayloadUnverified(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return DecodeClaims(payload)
}

const loginContext = "meterupd-login-v1"

// answerContent is what an answer signs: the nonce, the node and the
// token, bound together so that an answer is good for one challenge of one
// node with one token.
func answerContent(nonce []byte, nodeID string, token []byte) ([]byte, error) {
	h := sha256.Sum256(token)
	b, err := claimsEnc.Marshal([]any{loginContext, nonce, nodeID, h[:]})
	if err != nil {
		return nil, fmt.Errorf("techtoken: answer: %w", err)
	}
	return b, nil
}

// Answer signs the answer to a node's challenge with the technician's
// private key and returns the login line to paste on the console. The
// key must be the token's cnf key.
func Answer(token []byte, tech crypto.Signer, nonce []byte, nodeID string) (string, error) {
	c, err := ClaimsUnverified(token)
	if err != nil {
		return "", err
	}
	pub, err := c.TechKey()
	if err != nil {
		return "", err
	}
	if !publicEqual(pub, tech.Public()) {
		return "", fmt.Errorf("%w: this private key is not the one the token names", ErrAnswer)
	}
	if len(nonce) != NonceSize {
		return "", fmt.Errorf("%w: challenge is %d bytes, want %d", ErrLine, len(nonce), NonceSize)
	}
	alg, _ := answerAlg(pub)
	signer, err := cose.NewSigner(alg, tech)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	content, err := answerContent(nonce, nodeID, token)
	if err != nil {
		return "", err
	}
	sig, err := signer.Sign(rand.Reader, content)
	if err != nil {
		return "", fmt.Errorf("techtoken: sign answer: %w", err)
	}
	return FormatLogin(Login{Nonce: nonce, Token: token, Signature: sig}), nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// verifyAnswer checks the answer's signature with the token's cnf key.
func verifyAnswer(c *Claims, l Login, nodeID string) error {
	pub, err := c.TechKey()
	if err != nil {
		return err
	}
	alg, _ := answerAlg(pub)
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	content, err := answerContent(l.Nonce, nodeID, l.Token)
	if err != nil {
		return err
	}
	if err := v.Verify(content, l.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	return nil
}
