package manifest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

func loadKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t testing.TB, keys ...crypto.Signer) *Keyring {
	t.Helper()
	k := &Keyring{}
	for _, s := range keys {
		if _, err := k.Add(s.Public()); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// images v1, v2, v3 and payloads of a three-item package: delta 1→2,
// delta 2→3, skip delta 1→3. Payload contents are stand-ins: the manifest
// layer never interprets them.
var (
	img1 = bytes.Repeat([]byte("version one "), 100)
	img2 = bytes.Repeat([]byte("version two "), 100)
	img3 = bytes.Repeat([]byte("version three "), 100)
)

func threeItems() (*Manifest, [][]byte) {
	p12 := bytes.Repeat([]byte{0x12}, 120)
	p23 := bytes.Repeat([]byte{0x23}, 130)
	p13 := bytes.Repeat([]byte{0x13}, 200)
	dt := []string{"em300"}
	hw := HardwareRange{Min: 2, Max: 5}
	checks := []Check{{Kind: "power"}, {Kind: "source-digest"}, {Kind: "free-space", Value: 4 << 20}}
	th := Thresholds{Skip: 0, Stop: 1}
	m := &Manifest{
		Schema: SchemaVersion, Sequence: 7, VendorID: 0x4d45, ClassID: 3,
		Items: []Item{
			{ID: "sys-1-2", Component: ComponentSystem, Kind: KindDelta, Format: "bsdiff", From: "1.0", To: "2.0",
				DeviceTypes: dt, Hardware: hw, Step: 1, Payload: "sys-1.0-2.0.bsdiff", Size: uint64(len(p12)), Digest: digest(p12),
				SourceDigest: digest(img1), TargetDigest: digest(img2), TargetSize: uint64(len(img2)), Checks: checks, Thresholds: th},
			{ID: "sys-2-3", Component: ComponentSystem, Kind: KindDelta, Format: "bsdiff", From: "2.0", To: "3.0",
				DeviceTypes: dt, Hardware: hw, Step: 2, Payload: "sys-2.0-3.0.bsdiff", Size: uint64(len(p23)), Digest: digest(p23),
				SourceDigest: digest(img2), TargetDigest: digest(img3), TargetSize: uint64(len(img3)), Checks: checks, Thresholds: th},
			{ID: "sys-1-3", Component: ComponentSystem, Kind: KindDelta, Format: "bsdiff", From: "1.0", To: "3.0",
				DeviceTypes: dt, Hardware: hw, Step: 1, Payload: "sys-1.0-3.0.bsdiff", Size: uint64(len(p13)), Digest: digest(p13),
				SourceDigest: digest(img1), TargetDigest: digest(img3), TargetSize: uint64(len(img3)), Checks: checks, Thresholds: th},
		},
	}
	return m, [][]byte{p12, p23, p13}
}

// roundTrip encodes m and decodes the bytes again.
func roundTrip(t testing.TB, m *Manifest) *Manifest {
	t.Helper()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func signed(t testing.TB, m *Manifest, key crypto.Signer) []byte {
	t.Helper()
	payload, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(payload, key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func pack(t testing.TB, env []byte, payloads [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, env, false)
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
