package manifest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// envMode checks the shape of the COSE_Sign1 envelope before go-cose sees
// it: same limits as the manifest, but the COSE_Sign1 tag (18) is allowed.
var envMode cbor.DecMode

func init() {
	var err error
	envMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  maxDepth,
		MaxArrayElements: maxElems,
		MaxMapPairs:      maxPairs,
	}.DecMode()
	if err != nil {
		panic("manifest: cbor envelope options: " + err.Error())
	}
}

// Sign wraps the manifest payload (Encode's output) in a tagged
// COSE_Sign1 signed by priv. The protected header holds exactly the
// algorithm and the key id; the unprotected header is empty.
func Sign(payload []byte, priv crypto.Signer) ([]byte, error) {
	alg, err := keyAlg(priv.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(priv.Public())
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(alg, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = kid
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return nil, fmt.Errorf("manifest: sign: %w", err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("manifest: sign: %w", err)
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes signed, max %d", ErrTooLarge, len(b), MaxManifestSize)
	}
	return b, nil
}

// Verify checks a signed manifest against the keyring and only then
// decodes its payload. In order: size cap; envelope well-formed (limits,
// no indefinite lengths, no duplicate keys, no trailing bytes); protected
// header has exactly alg and kid (a crit parameter, or anything in the
// unprotected header, is refused); kid is in the keyring; alg is the one
// the key signs with; the signature verifies over the bytes as received
// (nothing is re-encoded); then Decode. It returns the key id that signed.
func Verify(envelope []byte, keys *Keyring) (*Manifest, []byte, error) {
	payload, kid, err := verifyEnvelope(envelope, keys)
	if err != nil {
		return nil, nil, err
	}
	m, err := Decode(payload)
	if err != nil {
		return nil, nil, err
	}
	return m, kid, nil
}

// VerifyPayload checks a COSE_Sign1 against the keyring by the same rules
// as Verify and returns its payload undecoded, with the signer's key id:
// for other signed objects that share the envelope (technician tokens),
// each verified against its own keyring.
func VerifyPayload(envelope []byte, keys *Keyring) (payload, kid []byte, err error) {
	return verifyEnvelope(envelope, keys)
}

// PayloadUnverified returns the manifest payload of a COSE_Sign1 without
// checking the signature, for host tools (inspect, repack) only. The node
// never calls it.
func PayloadUnverified(envelope []byte) ([]byte, []byte, error) {
	msg, err := parseEnvelope(envelope)
	if err != nil {
		return nil, nil, err
	}
	kid, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	return msg.Payload, kid, nil
}

func parseEnvelope(envelope []byte) (*cose.Sign1Message, error) {
	if len(envelope) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(envelope), MaxManifestSize)
	}
	if err := envMode.Wellformed(envelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	if err := minimalEnvelope(envelope); err != nil {
		return nil, err
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(envelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	if len(msg.Headers.Unprotected) != 0 || !bytes.Equal(msg.Headers.RawUnprotected, []byte{0xa0}) {
		return nil, fmt.Errorf("%w: unprotected header must be empty", ErrHeader)
	}
	for label := range msg.Headers.Protected {
		if label != cose.HeaderLabelAlgorithm && label != cose.HeaderLabelKeyID {
			return nil, fmt.Errorf("%w: protected label %v", ErrHeader, label)
		}
	}
	if _, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte); !ok {
		return nil, fmt.Errorf("%w: no key id", ErrHeader)
	}
	if _, err := msg.Headers.Protected.Algorithm(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	if msg.Payload == nil {
		return nil, fmt.Errorf("%w: detached payload", ErrMalformedSignature)
	}
	return &msg, nil
}

func verifyEnvelope(envelope []byte, keys *Keyring) (payload, kid []byte, err error) {
	msg, err := parseEnvelope(envelope)
	if err != nil {
		return nil, nil, err
	}
	kid = msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	key, ok := keys.Lookup(kid)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %x", ErrUnknownKey, kid)
	}
	alg, _ := msg.Headers.Protected.Algorithm()
	if alg != key.Alg {
		return nil, nil, fmt.Errorf("%w: header %v, key %v", ErrAlgorithm, alg, key.Alg)
	}
	v, err := cose.NewVerifier(key.Alg, key.Public)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	if err := msg.Verify(nil, v); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return msg.Payload, kid, nil
}

// minimalEnvelope refuses non-minimal length encodings of the byte strings
// of a COSE_Sign1 (protected header, payload, signature). go-cose rebuilds
// the bstr header of the protected header before verifying, so a
// non-minimal one would verify: one message, several encodings. We accept
// only the one the signer produced.
func minimalEnvelope(envelope []byte) error {
	var tag cbor.RawTag
	if err := envMode.Unmarshal(envelope, &tag); err != nil || tag.Number != 18 {
		return fmt.Errorf("%w: not a tagged COSE_Sign1", ErrMalformedSignature)
	}
	var parts []cbor.RawMessage
	if err := envMode.Unmarshal(tag.Content, &parts); err != nil || len(parts) != 4 {
		return fmt.Errorf("%w: COSE_Sign1 is not an array of 4", ErrMalformedSignature)
	}
	for _, i := range []int{0, 2, 3} {
		var b []byte
		if err := envMode.Unmarshal(parts[i], &b); err != nil {
			return fmt.Errorf("%w: element %d: %v", ErrMalformedSignature, i, err)
		}
		canon, err := encMode.Marshal(b)
		if err != nil || !bytes.Equal(canon, parts[i]) {
			return fmt.Errorf("%w: element %d is not minimally encoded", ErrMalformedSignature, i)
		}
	}
	return nil
}
