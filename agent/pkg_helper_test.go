package agent_test

import (
	"crypto"
	"testing"

	"meterupd/manifest"
	"meterupd/store/storetest"
)

// signPackage encodes m, signs it with key and writes the package of its
// payloads, in manifest order.
func signPackage(t testing.TB, key crypto.Signer, m *manifest.Manifest, payloads ...[]byte) []byte {
	t.Helper()
	return storetest.SignPackage(t, key, m, payloads...)
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
