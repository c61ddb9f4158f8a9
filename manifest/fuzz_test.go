package manifest

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestGoldenTestdata keeps testdata/three-item.{cbor,cose,pkg} (the fuzz
// seeds and the documented example) in step with the code. Ed25519
// signatures are deterministic, so the files are byte-stable.
func TestGoldenTestdata(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	payload, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env := signed(t, m, ed)
	files := map[string][]byte{
		"three-item.cbor": payload,
		"three-item.cose": env,
		"three-item.pkg":  pack(t, env, payloads),
	}
	bm, bp := blockItems(t)
	files["blocks.pkg"] = pack(t, signed(t, bm, ed), bp)
	for name, want := range files {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run Golden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the code writes now (run go test -run Golden -update)", path)
		}
	}
}

func seeds(f *testing.F, pattern string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds %s: %v", pattern, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

var sentinels = []error{
	ErrUnsigned, ErrMalformedSignature, ErrHeader, ErrUnknownKey, ErrAlgorithm, ErrBadSignature, ErrKeyUpdate,
	ErrTooLarge, ErrMalformed, ErrUnknownCritical, ErrSchemaVersion, ErrInvalid,
	ErrReplay, ErrRollback, ErrDowngrade, ErrExpired, ErrNotForDevice, ErrGap, ErrPrerequisite,
	ErrContainer, ErrTruncated, ErrTrailingData, ErrPayloadName, ErrUnlisted, ErrMissingPayload, ErrPayloadSize, ErrDigest,
}

func typed(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDecode: any input either decodes to a manifest that re-encodes and
// decodes to the same value, or fails with a typed error.
func FuzzDecode(f *testing.F) {
	seeds(f, "*.cbor")
	f.Add([]byte{0xa2, 0x00, 0x01, 0x00, 0x01})
	f.Add([]byte{0xa1, 0x06, 0x9b, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if m != nil || !typed(err) {
				t.Fatalf("Decode = %v, %v: want nil and a typed error", m, err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(Decode(x)) = %v", err)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))) = %v", err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
		_, _ = m.Select(NodeInfo{DeviceType: "em300", Hardware: 3, Installed: map[Component]string{ComponentSystem: "1.0"}})
	})
}

// FuzzOpenPackage: the package reader never panics, fails with typed
// errors, and hands out a payload as trusted (io.EOF) only when its
// digest matches the signed manifest.
func FuzzOpenPackage(f *testing.F) {
	seeds(f, "*.pkg")
	keys := ring(f, loadKey(f, "test-ed25519"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := OpenPackage(bytes.NewReader(data), keys, Options{})
		if err != nil {
			if !typed(err) {
				t.Fatalf("OpenPackage error not typed: %v", err)
			}
			return
		}
		for {
			it, r, err := p.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !typed(err) {
					t.Fatalf("Next error not typed: %v", err)
				}
				return
			}
			b, err := io.ReadAll(r)
			if err != nil {
				if !typed(err) {
					t.Fatalf("Read error not typed: %v", err)
				}
				return
			}
			if !bytes.Equal(digest(b), it.Digest) || uint64(len(b)) != it.Size {
				t.Fatalf("payload %s trusted with the wrong digest or size", it.Payload)
			}
		}
	})
}

// FuzzParseKeyringPEM: the persisted keyring parser fails cleanly or
// yields a ring that round-trips through MarshalPEM.
func FuzzParseKeyringPEM(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "keys", "*.pem"))
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		all = append(all, b...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyringPEM(data)
		if err != nil {
			if k != nil || !typed(err) {
				t.Fatalf("ParseKeyringPEM = %v, %v: want nil and a typed error", k, err)
			}
			return
		}
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatalf("MarshalPEM = %v", err)
		}
		k2, err := ParseKeyringPEM(b)
		if err != nil || k2.Len() != k.Len() {
			t.Fatalf("round trip: %v, %d keys, want %d", err, k2.Len(), k.Len())
		}
		for _, key := range k.Keys() {
			if _, ok := k2.Lookup(key.ID); !ok {
				t.Fatalf("round trip lost key %x", key.ID)
			}
		}
	})
}
