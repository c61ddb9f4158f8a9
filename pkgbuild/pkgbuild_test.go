package pkgbuild

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/manifest"
)

const (
	specPath = "../testdata/pkg/spec.json"
	edKey    = "../testdata/keys/test-ed25519.key.pem"
	edPub    = "../testdata/keys/test-ed25519.pub.pem"
	p256Key  = "../testdata/keys/test-p256.key.pem"
	p256Pub  = "../testdata/keys/test-p256.pub.pem"
)

func built(t *testing.T) *Built {
	t.Helper()
	s, err := ReadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(s, filepath.Dir(specPath))
	if err != nil {
		t.Fatalf("Build(%s) = %v", specPath, err)
	}
	return b
}

// TestBuildWriteReadRepackInMemory is what the head-end does: build once,
// then tailor a package per group, without touching files.
func TestBuildWriteReadRepackInMemory(t *testing.T) {
	ed, err := LoadSigner(edKey)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := LoadSigner(p256Key)
	if err != nil {
		t.Fatal(err)
	}
	var pkg bytes.Buffer
	if _, err := built(t).Write(&pkg, ed); err != nil {
		t.Fatalf("Write = %v", err)
	}
	ring, err := LoadKeyring([]string{p256Pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		g    Group
		want string
		err  error
	}{
		{Group{DeviceType: "em310", Component: manifest.ComponentSystem, From: "2.0", Hardware: -1}, "sys-2-3", nil},
		{Group{DeviceType: "em310", Component: manifest.ComponentSystem, From: "1.0", Hardware: -1}, "sys-1-3", nil},
		{Group{DeviceType: "wm100", Component: manifest.ComponentSystem, From: "1.0", Hardware: -1}, "", manifest.ErrNotForDevice},
		{Group{DeviceType: "em300", Component: manifest.ComponentSystem, From: "0.9", Hardware: -1}, "", manifest.ErrGap},
	} {
		p, err := Read(bytes.NewReader(pkg.Bytes()))
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if !p.Signed || len(p.Manifest.Items) != 3 {
			t.Fatalf("Read: signed %v, %d items, want signed, 3", p.Signed, len(p.Manifest.Items))
		}
		var out bytes.Buffer
		nm, _, err := p.Repack(&out, tc.g, 7, p256)
		if !errors.Is(err, tc.err) {
			t.Errorf("Repack(%+v) = %v, want %v", tc.g, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		var ids []string
		for _, it := range nm.Items {
			ids = append(ids, it.ID)
		}
		if got := strings.Join(ids, " "); got != tc.want || nm.Sequence != 7 {
			t.Errorf("Repack(%+v) kept %q seq %d, want %q seq 7", tc.g, got, nm.Sequence, tc.want)
		}
		// A node accepts the result: signature and every kept payload.
		op, err := manifest.OpenPackage(bytes.NewReader(out.Bytes()), ring, manifest.Options{})
		if err != nil {
			t.Fatalf("OpenPackage(repacked) = %v", err)
		}
		n := 0
		for {
			_, r, err := op.Next()
			if err != nil {
				break
			}
			b := new(bytes.Buffer)
			if _, err := b.ReadFrom(r); err != nil {
				t.Fatalf("payload: %v", err)
			}
			n++
		}
		if n != len(nm.Items) {
			t.Errorf("repacked package carries %d payloads, want %d", n, len(nm.Items))
		}
	}
}

func TestBuildRefusesBadSpecs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, spec string }{
		{"unknown field", `{"sequence": 1, "itemz": []}`},
		{"no target", `{"sequence": 1, "items": [{"id": "x", "component": "system", "kind": "full", "to": "2.0"}]}`},
		{"delta without source", `{"sequence": 1, "items": [{"id": "x", "component": "system", "from": "1.0", "to": "2.0", "target_sha256": "00"}]}`},
		{"bad expiry", `{"sequence": 1, "expires": "tomorrow"}`},
	} {
		p := filepath.Join(dir, "spec.json")
		if err := os.WriteFile(p, []byte(tc.spec), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := ReadSpec(p)
		if err == nil {
			_, err = Build(s, dir)
		}
		if err == nil {
			t.Errorf("%s: ReadSpec+Build succeeded, want an error", tc.name)
		}
	}
}

func TestFailedRepackLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	ed, err := LoadSigner(edKey)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "p.pkg")
	if _, err := built(t).WriteFile(in, ed); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.pkg")
	ring, _ := LoadKeyring([]string{p256Pub})
	_, err = RepackFile(in, out, Group{DeviceType: "em300", Component: manifest.ComponentSystem, From: "1.0", Hardware: -1}, 0, ed, ring)
	if !errors.Is(err, manifest.ErrUnknownKey) {
		t.Errorf("RepackFile(untrusted input) = %v, want ErrUnknownKey", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed repack left %s: %v", out, err)
	}
}

// TestBlockDigestsByDefault: a built package carries block digests
// (schema 2) unless the spec asks for none, for nodes that read only
// schema 1; both open on a node.
func TestBlockDigestsByDefault(t *testing.T) {
	ed, err := LoadSigner(edKey)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyring([]string{edPub})
	if err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	for _, tc := range []struct {
		bs     *uint32
		schema uint
	}{{nil, manifest.SchemaBlocks}, {&zero, manifest.SchemaVersion}} {
		s, err := ReadSpec(specPath)
		if err != nil {
			t.Fatal(err)
		}
		s.BlockSize = tc.bs
		b, err := Build(s, filepath.Dir(specPath))
		if err != nil {
			t.Fatal(err)
		}
		if b.Manifest.Schema != tc.schema {
			t.Errorf("block size %v: schema %d, want %d", tc.bs, b.Manifest.Schema, tc.schema)
		}
		var pkg bytes.Buffer
		if _, err := b.Write(&pkg, ed); err != nil {
			t.Fatal(err)
		}
		p, err := manifest.OpenPackage(&pkg, ring, manifest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, r, err := p.Next()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("schema %d: %v", tc.schema, err)
				}
				break
			}
			if _, err := bytes.NewBuffer(nil).ReadFrom(r); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTailorKeepsTheSignature: a package cut down to one node's payloads
// keeps the release signature and opens on a node that reads tailored
// packages; a strict reader refuses it.
func TestTailorKeepsTheSignature(t *testing.T) {
	ed, err := LoadSigner(edKey)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyring([]string{edPub})
	if err != nil {
		t.Fatal(err)
	}
	var full bytes.Buffer
	if _, err := built(t).Write(&full, ed); err != nil {
		t.Fatal(err)
	}
	p, err := Read(bytes.NewReader(full.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	keep := p.Manifest.Items[1].Payload
	var cut bytes.Buffer
	if err := p.Tailor(&cut, map[string]bool{keep: true}); err != nil {
		t.Fatal(err)
	}
	if cut.Len() >= full.Len() {
		t.Fatalf("tailored package of %d bytes, the full one %d", cut.Len(), full.Len())
	}
	np, err := manifest.OpenPackage(bytes.NewReader(cut.Bytes()), ring, manifest.Options{Tailored: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		it, r, err := np.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Payload)
	}
	if len(got) != 1 || got[0] != keep || len(np.Absent()) != len(np.Manifest().Items)-1 {
		t.Fatalf("read %v, absent %v", got, np.Absent())
	}
	sp, err := manifest.OpenPackage(bytes.NewReader(cut.Bytes()), ring, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, r, err := sp.Next()
		if err != nil {
			if !errors.Is(err, manifest.ErrMissingPayload) {
				t.Fatalf("strict reader: %v, want ErrMissingPayload", err)
			}
			break
		}
		io.Copy(io.Discard, r)
	}
}
