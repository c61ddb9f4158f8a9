package manifest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// rawSign1 builds a tagged COSE_Sign1 by hand, so tests control every
// header byte go-cose would normalise. priv must be Ed25519.
func rawSign1(t *testing.T, protected, unprotected map[int64]any, payload []byte, priv crypto.Signer) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	var prot []byte
	if len(protected) > 0 {
		if prot, err = em.Marshal(protected); err != nil {
			t.Fatal(err)
		}
	}
	tbs, err := em.Marshal([]any{"Signature1", prot, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := priv.Sign(rand.Reader, tbs, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if unprotected == nil {
		unprotected = map[int64]any{}
	}
	b, err := em.Marshal(cbor.Tag{Number: 18, Content: []any{prot, unprotected, payload, sig}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignVerifyBothAlgorithms(t *testing.T) {
	m, _ := threeItems()
	for _, name := range []string{"test-ed25519", "test-p256"} {
		key := loadKey(t, name)
		env := signed(t, m, key)
		got, kid, err := Verify(env, ring(t, key))
		if err != nil {
			t.Fatalf("%s: Verify = %v", name, err)
		}
		want, _ := KeyID(key.Public())
		if string(kid) != string(want) || got.Sequence != m.Sequence {
			t.Errorf("%s: Verify returned kid %x seq %d, want %x %d", name, kid, got.Sequence, want, m.Sequence)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	next := loadKey(t, "test-ed25519-next")
	m, _ := threeItems()
	payload, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	edKID, _ := KeyID(ed.Public())
	good := signed(t, m, ed)
	other := *m
	other.Sequence = 99
	otherPayload, _ := Encode(&other)

	// A message signed by next but claiming ed's key id: "wrong key".
	wrongKey := rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA), 4: edKID}, nil, payload, next)
	// Good signature, then the payload swapped: "signature over other bytes".
	swapped := rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA), 4: edKID}, nil, payload, ed)
	{
		var raw cbor.Tag
		if err := cbor.Unmarshal(swapped, &raw); err != nil {
			t.Fatal(err)
		}
		arr := raw.Content.([]any)
		arr[2] = otherPayload
		swapped, _ = cbor.Marshal(cbor.Tag{Number: 18, Content: arr})
	}
	indef := append([]byte(nil), good...)
	// Turn the outer array header (0x84 after the tag byte 0xd2) into an
	// indefinite-length array (0x9f … 0xff).
	indef[1] = 0x9f
	indef = append(indef, 0xff)

	// The protected header's bstr length in a non-minimal form (0x58 n
	// instead of 0x40+n): go-cose would normalise it and verify.
	nonMinimal := func() []byte {
		if good[1] != 0x84 || good[2] < 0x40 || good[2] > 0x57 {
			t.Fatalf("unexpected envelope prefix % x", good[:4])
		}
		return append([]byte{good[0], good[1], 0x58, good[2] - 0x40}, good[3:]...)
	}()
	if !bytes.Equal(nonMinimal[4:], good[3:]) {
		t.Fatal("non-minimal envelope built wrong")
	}
	for _, tc := range []struct {
		name string
		env  []byte
		keys *Keyring
		want error
	}{
		{"wrong key", wrongKey, ring(t, ed), ErrBadSignature},
		{"unknown key id", signed(t, m, next), ring(t, ed), ErrUnknownKey},
		{"empty keyring", good, &Keyring{}, ErrUnknownKey},
		{"signature over other bytes", swapped, ring(t, ed), ErrBadSignature},
		{"alg only in unprotected header", rawSign1(t, map[int64]any{4: edKID}, map[int64]any{1: int64(cose.AlgorithmEdDSA)}, payload, ed), ring(t, ed), ErrHeader},
		{"kid in unprotected header", rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA)}, map[int64]any{4: edKID}, payload, ed), ring(t, ed), ErrHeader},
		{"crit in protected header", rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA), 4: edKID, 2: []any{int64(99)}, 99: int64(1)}, nil, payload, ed), ring(t, ed), ErrHeader},
		{"crit in unprotected header", rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA), 4: edKID}, map[int64]any{2: []any{int64(4)}}, payload, ed), ring(t, ed), ErrMalformedSignature},
		{"no alg", rawSign1(t, map[int64]any{4: edKID}, nil, payload, ed), ring(t, ed), ErrHeader},
		{"alg not the key's", rawSign1(t, map[int64]any{1: int64(cose.AlgorithmES256), 4: edKID}, nil, payload, ed), ring(t, ed), ErrAlgorithm},
		{"trailing bytes", append(append([]byte(nil), good...), 0x00), ring(t, ed), ErrMalformedSignature},
		{"indefinite length", indef, ring(t, ed), ErrMalformedSignature},
		{"untagged", good[1:], ring(t, ed), ErrMalformedSignature},
		{"non-minimal protected length", nonMinimal, ring(t, ed), ErrMalformedSignature},
		{"too large", make([]byte, MaxManifestSize+1), ring(t, ed), ErrTooLarge},
		{"truncated", good[:len(good)-1], ring(t, ed), ErrMalformedSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, kid, err := Verify(tc.env, tc.keys)
			if !errors.Is(err, tc.want) || m != nil || kid != nil {
				t.Errorf("Verify = %v, %x, %v; want nil, nil, %v", m, kid, err, tc.want)
			}
		})
	}
}

func TestVerifyAcceptsHandBuiltEnvelope(t *testing.T) {
	// The negative cases above are only meaningful if the hand-built
	// envelope with correct headers verifies.
	ed := loadKey(t, "test-ed25519")
	m, _ := threeItems()
	payload, _ := Encode(m)
	kid, _ := KeyID(ed.Public())
	env := rawSign1(t, map[int64]any{1: int64(cose.AlgorithmEdDSA), 4: kid}, nil, payload, ed)
	if _, _, err := Verify(env, ring(t, ed)); err != nil {
		t.Fatalf("Verify(hand-built) = %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	old := loadKey(t, "test-ed25519")
	next := loadKey(t, "test-ed25519-next")
	keys := ring(t, old)
	add, err := NewKeyUpdate(next.Public())
	if err != nil {
		t.Fatal(err)
	}
	oldKID, _ := KeyID(old.Public())
	rot := &Manifest{Schema: SchemaVersion, Sequence: 8, Keys: []KeyUpdate{add, {Op: KeyRetire, KID: oldKID}}}
	got, _, err := Verify(signed(t, rot, old), keys)
	if err != nil {
		t.Fatalf("Verify(rotation signed by trusted key) = %v", err)
	}
	keys2, err := keys.Apply(got.Keys)
	if err != nil {
		t.Fatalf("Apply = %v", err)
	}
	if keys.Len() != 1 || keys2.Len() != 1 {
		t.Fatalf("Apply: old ring %d keys, new ring %d; want 1 and 1", keys.Len(), keys2.Len())
	}
	m, _ := threeItems()
	if _, _, err := Verify(signed(t, m, next), keys2); err != nil {
		t.Errorf("new key after rotation: Verify = %v", err)
	}
	if _, _, err := Verify(signed(t, m, old), keys2); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("retired key after rotation: Verify = %v, want ErrUnknownKey", err)
	}
	// Persisted form round-trips.
	pemb, err := keys2.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	keys3, err := ParseKeyringPEM(pemb)
	if err != nil || keys3.Len() != 1 {
		t.Fatalf("ParseKeyringPEM = %v, %v", keys3, err)
	}
	if _, _, err := Verify(signed(t, m, next), keys3); err != nil {
		t.Errorf("reloaded ring: Verify = %v", err)
	}
}

func TestKeyUpdateRejects(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	next := loadKey(t, "test-ed25519-next")
	kid, _ := KeyID(ed.Public())
	add, _ := NewKeyUpdate(next.Public())
	badKID := add
	badKID.KID = kid // id of another key
	for _, tc := range []struct {
		name string
		ups  []KeyUpdate
	}{
		{"retire every key", []KeyUpdate{{Op: KeyRetire, KID: kid}}},
		{"kid does not match key", []KeyUpdate{badKID}},
		{"garbage public key", []KeyUpdate{{Op: KeyAdd, KID: kid, Public: []byte{1, 2, 3}}}},
		{"short kid", []KeyUpdate{{Op: KeyRetire, KID: kid[:3]}}},
		{"unknown op", []KeyUpdate{{Op: 7, KID: kid}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := ring(t, ed)
			got, err := keys.Apply(tc.ups)
			if !errors.Is(err, ErrKeyUpdate) || got != nil {
				t.Errorf("Apply = %v, %v; want nil, ErrKeyUpdate", got, err)
			}
			if keys.Len() != 1 {
				t.Errorf("Apply changed the original ring")
			}
			// The same updates inside a manifest are refused at decode.
			m := &Manifest{Schema: SchemaVersion, Sequence: 1, Keys: tc.ups}
			if tc.name != "retire every key" {
				if _, err := Encode(m); !errors.Is(err, ErrKeyUpdate) {
					t.Errorf("Encode = %v, want ErrKeyUpdate", err)
				}
			}
		})
	}
}
