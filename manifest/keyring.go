package manifest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"

	"github.com/veraison/go-cose"
)

// KeyIDSize is the length of a key id: the first bytes of the SHA-256 of
// the key's PKIX (SubjectPublicKeyInfo) DER encoding.
const KeyIDSize = 8

// MaxKeys bounds a keyring.
const MaxKeys = 16

// Key is one trusted public key.
type Key struct {
	ID     []byte
	Alg    cose.Algorithm // AlgorithmEdDSA or AlgorithmES256
	Public crypto.PublicKey
}

// Keyring is the set of public keys a node trusts to sign manifests. The
// zero value is empty (trusts nothing). A Keyring is not safe for
// concurrent mutation; Apply returns a new one.
type Keyring struct {
	keys map[string]Key // by hex key id
}

// KeyID returns the key id of pub.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	if _, err := keyAlg(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	sum := sha256.Sum256(der)
	return sum[:KeyIDSize], nil
}

// keyAlg returns the only COSE algorithm a key may sign with: Ed25519 keys
// sign EdDSA, P-256 keys ES256. Anything else is refused.
func keyAlg(pub crypto.PublicKey) (cose.Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return cose.AlgorithmEdDSA, nil
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return cose.AlgorithmES256, nil
		}
	}
	return 0, fmt.Errorf("%w: key type %T (want Ed25519 or ECDSA P-256)", ErrAlgorithm, pub)
}

// NewKeyring returns a keyring trusting pubs.
func NewKeyring(pubs ...crypto.PublicKey) (*Keyring, error) {
	k := &Keyring{}
	for _, p := range pubs {
		if _, err := k.Add(p); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Add trusts pub and returns its key id.
func (k *Keyring) Add(pub crypto.PublicKey) ([]byte, error) {
	alg, err := keyAlg(pub)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	if k.keys == nil {
		k.keys = map[string]Key{}
	}
	if _, ok := k.keys[hex.EncodeToString(id)]; !ok && len(k.keys) >= MaxKeys {
		return nil, fmt.Errorf("%w: keyring full (%d keys)", ErrKeyUpdate, MaxKeys)
	}
	k.keys[hex.EncodeToString(id)] = Key{ID: id, Alg: alg, Public: pub}
	return id, nil
}

// Lookup returns the key with id kid.
func (k *Keyring) Lookup(kid []byte) (Key, bool) {
	if k == nil {
		return Key{}, false
	}
	key, ok := k.keys[hex.EncodeToString(kid)]
	return key, ok
}

// Keys returns the trusted keys sorted by id.
func (k *Keyring) Keys() []Key {
	if k == nil {
		return nil
	}
	out := make([]Key, 0, len(k.keys))
	for _, key := range k.keys {
		out = append(out, key)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].ID, out[j].ID) < 0 })
	return out
}

// Len returns the number of trusted keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

func (k *Keyring) clone() *Keyring {
	c := &Keyring{keys: make(map[string]Key, k.Len())}
	if k != nil {
		for id, key := range k.keys {
			c.keys[id] = key
		}
	}
	return c
}

func (u KeyUpdate) validate() error {
	if len(u.KID) != KeyIDSize {
		return fmt.Errorf("key id is %d bytes, want %d", len(u.KID), KeyIDSize)
	}
	switch u.Op {
	case KeyAdd:
		pub, err := x509.ParsePKIXPublicKey(u.Public)
		if err != nil {
			return fmt.Errorf("public key: %v", err)
		}
		id, err := KeyID(pub)
		if err != nil {
			return err
		}
		if !bytes.Equal(id, u.KID) {
			return errors.New("key id does not match the public key")
		}
	case KeyRetire:
		if len(u.Public) != 0 {
			return errors.New("retire carries a public key")
		}
	default:
		return fmt.Errorf("unknown op %d", u.Op)
	}
	return nil
}

// NewKeyUpdate returns the update that adds pub to a keyring.
func NewKeyUpdate(pub crypto.PublicKey) (KeyUpdate, error) {
	id, err := KeyID(pub)
	if err != nil {
		return KeyUpdate{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return KeyUpdate{}, fmt.Errorf("%w: %v", ErrKeyUpdate, err)
	}
	return KeyUpdate{Op: KeyAdd, KID: id, Public: der}, nil
}

// Apply returns the keyring after the signed key updates of a verified
// manifest: adds, then retirements, in order. k is not changed. A result
// with no key left is refused (ErrKeyUpdate): a node must never lock
// itself out. The caller persists the result (journal) before trusting it.
func (k *Keyring) Apply(updates []KeyUpdate) (*Keyring, error) {
	c := k.clone()
	for i, u := range updates {
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("%w: keys[%d]: %v", ErrKeyUpdate, i, err)
		}
		switch u.Op {
		case KeyAdd:
			pub, _ := x509.ParsePKIXPublicKey(u.Public) // validated above
			if _, err := c.Add(pub); err != nil {
				return nil, err
			}
		case KeyRetire:
			delete(c.keys, hex.EncodeToString(u.KID))
		}
	}
	if c.Len() == 0 {
		return nil, fmt.Errorf("%w: the updates retire every trusted key", ErrKeyUpdate)
	}
	return c, nil
}

// MarshalPEM returns the keyring as concatenated "PUBLIC KEY" PEM blocks,
// the form ParseKeyringPEM reads and the agent persists.
func (k *Keyring) MarshalPEM() ([]byte, error) {
	var buf bytes.Buffer
	for _, key := range k.Keys() {
		b, err := MarshalPublicKeyPEM(key.Public)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// ParseKeyringPEM reads one or more "PUBLIC KEY" PEM blocks.
func ParseKeyringPEM(data []byte) (*Keyring, error) {
	k := &Keyring{}
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		pub, err := parsePublicBlock(blk)
		if err != nil {
			return nil, err
		}
		if _, err := k.Add(pub); err != nil {
			return nil, err
		}
	}
	if k.Len() == 0 {
		return nil, fmt.Errorf("%w: no PUBLIC KEY block", ErrKeyUpdate)
	}
	return k, nil
}

func parsePublicBlock(blk *pem.Block) (crypto.PublicKey, error) {
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: PEM block %q, want PUBLIC KEY", ErrKeyUpdate, blk.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyUpdate, err)
	}
	if _, err := keyAlg(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// GenerateKey makes a new signing key: alg is "ed25519" or "p256".
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ed25519":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("manifest: generate key: %w", err)
		}
		return priv, nil
	case "p256", "P-256", "ecdsa":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("manifest: generate key: %w", err)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("%w: unknown key algorithm %q (ed25519, p256)", ErrAlgorithm, alg)
}

// MarshalPrivateKeyPEM encodes a signing key as a PKCS#8 "PRIVATE KEY".
func MarshalPrivateKeyPEM(priv crypto.Signer) ([]byte, error) {
	if _, err := keyAlg(priv.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKeyPEM encodes pub as a PKIX "PUBLIC KEY".
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	if _, err := keyAlg(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads a PKCS#8 "PRIVATE KEY" (Ed25519 or P-256).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PRIVATE KEY PEM block", ErrAlgorithm)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T", ErrAlgorithm, k)
	}
	if _, err := keyAlg(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// ParsePublicKeyPEM reads a "PUBLIC KEY", or the public half of a
// "PRIVATE KEY".
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrAlgorithm)
	}
	if blk.Type == "PRIVATE KEY" {
		s, err := ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, err
		}
		return s.Public(), nil
	}
	return parsePublicBlock(blk)
}
