// Package storetest builds small signed packages for the tests of the
// package store and of the transports that deliver packages into it.
package storetest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"meterupd/manifest"
)

// Key loads a test key from the repository's testdata/keys.
func Key(t testing.TB, name string) crypto.Signer {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "testdata", "keys", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := manifest.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Sum is the SHA-256 of b.
func Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// Pkg is a signed package and what it holds.
type Pkg struct {
	Bytes    []byte
	Keys     *manifest.Keyring // trusts the signing key
	Payloads map[string][]byte
	Full     manifest.Item // a 40,000-byte full image, system 2.0
	Delta    manifest.Item // a 10,000-byte delta 1.0→2.0
}

// Package makes a signed package (sequence 5, key test-ed25519) of two
// items: a full 40,000-byte image (ten 4 KiB blocks, the last short) and a
// 10,000-byte delta; with blocks, manifest schema 2 with block digests.
func Package(t testing.TB, blocks bool) Pkg {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, 40000)
	for i := range img {
		img[i] = byte(rnd.Uint32())
	}
	dl := bytes.Repeat([]byte("delta "), 10000/6+1)[:10000]
	src := bytes.Repeat([]byte{1}, 100)
	m := &manifest.Manifest{Schema: manifest.SchemaVersion, Sequence: 5, Items: []manifest.Item{
		{ID: "full", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "2.0", Payload: "system-2.0.img",
			Size: uint64(len(img)), Digest: Sum(img), TargetDigest: Sum(img), TargetSize: uint64(len(img))},
		{ID: "delta", Component: manifest.ComponentSystem, Kind: manifest.KindDelta, Format: "bsdiff40", From: "1.0", To: "2.0",
			Payload: "system-1.0-2.0.bsdiff", Size: uint64(len(dl)), Digest: Sum(dl), SourceDigest: Sum(src), TargetDigest: Sum(img), TargetSize: uint64(len(img))},
	}}
	if blocks {
		for i, p := range [][]byte{img, dl} {
			if _, err := m.SetBlocks(i, p, manifest.DefaultBlockSize); err != nil {
				t.Fatal(err)
			}
		}
	}
	key := Key(t, "test-ed25519")
	pkg := SignPackage(t, key, m, img, dl)
	keys, err := manifest.NewKeyring(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Pkg{Bytes: pkg, Keys: keys, Payloads: map[string][]byte{"system-2.0.img": img, "system-1.0-2.0.bsdiff": dl},
		Full: m.Items[0], Delta: m.Items[1]}
}

// SignPackage encodes m, signs it with key and writes the package of its
// payloads, in manifest order.
func SignPackage(t testing.TB, key crypto.Signer, m *manifest.Manifest, payloads ...[]byte) []byte {
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
