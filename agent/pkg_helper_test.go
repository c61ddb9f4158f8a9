package agent_test

import (
	"bytes"
	"crypto"
	"testing"

	"meterupd/manifest"
)

// signPackage encodes m, signs it with key and writes the package of its
// payloads, in manifest order.
func signPackage(t testing.TB, key crypto.Signer, m *manifest.Manifest, payloads ...[]byte) []byte {
	t.Helper()
	body, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.Sign(body, key)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, env, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		if err := w.WritePayload(bytes.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// releaseKey is a fresh signing key and the keyring that trusts it.
func releaseKey(t testing.TB) (crypto.Signer, *manifest.Keyring) {
	t.Helper()
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := manifest.NewKeyring(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return key, kr
}
