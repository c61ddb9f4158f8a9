package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/agent"
	"meterupd/boards/sim"
	"meterupd/delta"
	"meterupd/manifest"
	"meterupd/store/storetest"
)

const pkgImageSize = 262144

// pkgNode is a sim node provisioned with version 1.0 and a trusted key.
func pkgNode(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	kr, err := manifest.NewKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := kr.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(kf, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	mustMU(t, dir, "sim", "init", dir, "--version", "1.0", "--image-size", "262144", "--keys", kf)
	return dir
}

func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// chainItems returns delta items 1.0→2.0→3.0 for an em300 and their payloads.
func chainItems(t *testing.T) ([]manifest.Item, [][]byte) {
	t.Helper()
	imgs := [][]byte{sim.Image(pkgImageSize, "1.0"), sim.Image(pkgImageSize, "2.0"), sim.Image(pkgImageSize, "3.0")}
	vers := []string{"1.0", "2.0", "3.0"}
	var items []manifest.Item
	var payloads [][]byte
	for i := 0; i < 2; i++ {
		p, err := delta.Diff(imgs[i], imgs[i+1], delta.FormatNode)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, manifest.Item{
			ID: "sys-" + vers[i] + "-" + vers[i+1], Component: manifest.ComponentSystem, Kind: manifest.KindDelta, Format: "node",
			From: vers[i], To: vers[i+1], DeviceTypes: []string{"em300"}, Step: uint32(i + 1),
			Payload: "sys-" + vers[i] + "-" + vers[i+1] + ".delta", Size: uint64(len(p)), Digest: digest(p),
			SourceDigest: digest(imgs[i]), TargetDigest: digest(imgs[i+1]), TargetSize: pkgImageSize,
			Checks:     []manifest.Check{{Kind: "device-type"}, {Kind: "power"}, {Kind: "source-digest"}},
			Thresholds: manifest.Thresholds{Stop: 1},
		})
		payloads = append(payloads, p)
	}
	return items, payloads
}

// writePkg signs m with key and writes the package, then lets tamper
// change its bytes.
func writePkg(t *testing.T, key crypto.Signer, m *manifest.Manifest, payloads [][]byte, tamper func([]byte) []byte) string {
	t.Helper()
	b := storetest.SignPackage(t, key, m, payloads...)
	if tamper != nil {
		b = tamper(append([]byte(nil), b...))
	}
	p := filepath.Join(t.TempDir(), "update.pkg")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// chainPkgNode is a node that trusts a new key, and a package signed with
// it: the chain 1.0 → 2.0 → 3.0, sequence 5.
func chainPkgNode(t *testing.T) (dir, pkg string) {
	t.Helper()
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir = pkgNode(t, key.Public())
	items, payloads := chainItems(t)
	return dir, writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 5, Items: items}, payloads, nil)
}

func TestSignedPackageInstallsAndReplayIsRefused(t *testing.T) {
	dir, pkg := chainPkgNode(t)
	if out := mustMU(t, dir, "request", pkg); !strings.Contains(out, `"system": "3.0"`) || !strings.Contains(out, `"device_type": "em300"`) {
		t.Errorf("request:\n%s", out)
	}
	mustMU(t, dir, "install", pkg)
	mustMU(t, dir, "run", "--once")
	st := status(t, dir)
	if st.Last == nil || st.Last.Code != agent.Committed || st.Slots["B"].Version != "3.0" || st.Floor != 5 || len(st.Checks) != 2 {
		t.Fatalf("after the package: %+v", st)
	}
	before := snapshot(t, dir)
	if _, err := mu(t, dir, "install", pkg); err == nil || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("replayed package: %v", err)
	}
	sameSnapshot(t, "replay", before, snapshot(t, dir))
}

// TestBadPackagesChangeNothing: every refused package leaves the slots, the
// journal, the store and the common data as they were.
func TestBadPackagesChangeNothing(t *testing.T) {
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	other, err := manifest.GenerateKey("p256")
	if err != nil {
		t.Fatal(err)
	}
	items, payloads := chainItems(t)
	m := func(mut func(*manifest.Manifest)) *manifest.Manifest {
		mm := &manifest.Manifest{Schema: 1, Sequence: 7, Items: append([]manifest.Item(nil), items...)}
		if mut != nil {
			mut(mm)
		}
		return mm
	}
	full := sim.Image(pkgImageSize, "0.9")
	tests := []struct {
		name     string
		key      crypto.Signer
		m        *manifest.Manifest
		payloads [][]byte
		tamper   func([]byte) []byte
		setup    func(t *testing.T, dir string)
		want     string
	}{
		{name: "unknown key", key: other, m: m(nil), want: "unknown key"},
		{name: "tampered payload", m: m(nil), tamper: func(b []byte) []byte { b[len(b)-2000] ^= 0x40; return b }, want: "digest mismatch"},
		{name: "signature over other bytes", m: m(nil), tamper: func(b []byte) []byte {
			i := bytes.Index(b, []byte("sys-1.0-2.0"))
			b[i+4] ^= 0x01
			return b
		}, want: "signature"},
		{name: "truncated package", m: m(nil), tamper: func(b []byte) []byte { return b[:len(b)/2] }, want: "truncated"},
		{name: "trailing data", m: m(nil), tamper: func(b []byte) []byte { return append(b, []byte("extra")...) }, want: "after"},
		{name: "other device type", m: m(func(mm *manifest.Manifest) {
			for i := range mm.Items {
				mm.Items[i].DeviceTypes = []string{"em999"}
			}
		}), want: "no item for this device"},
		{name: "gap in the version path", m: m(func(mm *manifest.Manifest) { mm.Items = mm.Items[1:] }), payloads: payloads[1:], want: "gap"},
		{name: "downgrade without the signed flag", m: &manifest.Manifest{Schema: 1, Sequence: 7, Items: []manifest.Item{{
			ID: "sys-0.9", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "0.9", Payload: "sys-0.9.img",
			Size: uint64(len(full)), Digest: digest(full), TargetDigest: digest(full), TargetSize: uint64(len(full))}},
			Targets: []manifest.Target{{Component: manifest.ComponentSystem, Version: "0.9"}}},
			payloads: [][]byte{full}, want: "downgrade"},
		{name: "level 3: on the backup battery", m: m(nil), setup: func(t *testing.T, dir string) {
			mustMU(t, dir, "sim", "power", "battery")
		}, want: "level 3"},
		{name: "level 3: source digest differs", m: m(func(mm *manifest.Manifest) {
			mm.Items[0].SourceDigest = digest([]byte("another 1.0"))
		}), want: "level 3"},
		{name: "older sequence than the floor", m: m(func(mm *manifest.Manifest) { mm.Sequence = 0 }), want: "replay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.key
			if k == nil {
				k = key
			}
			p := tt.payloads
			if p == nil {
				p = payloads
			}
			pkg := writePkg(t, k, tt.m, p, tt.tamper)
			dir := pkgNode(t, key.Public())
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			before := snapshot(t, dir)
			out, err := mu(t, dir, "install", pkg)
			if err == nil {
				t.Fatalf("install succeeded, want an error containing %q:\n%s", tt.want, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("install: %v, want it to contain %q", err, tt.want)
			}
			sameSnapshot(t, tt.name, before, snapshot(t, dir))
		})
	}
}

// TestKeyRotation: a package signed by the trusted key adds a new key and
// retires itself; the journal keeps the new keyring, so the next package
// must come signed by the new key and the old key is refused.
func TestKeyRotation(t *testing.T) {
	old, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	next, err := manifest.GenerateKey("p256")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, old.Public())
	add, err := manifest.NewKeyUpdate(next.Public())
	if err != nil {
		t.Fatal(err)
	}
	oldID, err := manifest.KeyID(old.Public())
	if err != nil {
		t.Fatal(err)
	}
	rot := writePkg(t, old, &manifest.Manifest{Schema: 1, Sequence: 1,
		Keys: []manifest.KeyUpdate{add, {Op: manifest.KeyRetire, KID: oldID}}}, nil, nil)
	if out := mustMU(t, dir, "install", rot); !strings.Contains(out, "trusted keys updated") {
		t.Fatalf("key rotation package: %s", out)
	}
	items, payloads := chainItems(t)
	byOld := writePkg(t, old, &manifest.Manifest{Schema: 1, Sequence: 2, Items: items}, payloads, nil)
	if _, err := mu(t, dir, "install", byOld); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("package signed by the retired key: %v", err)
	}
	byNext := writePkg(t, next, &manifest.Manifest{Schema: 1, Sequence: 2, Items: items}, payloads, nil)
	mustMU(t, dir, "install", byNext)
	mustMU(t, dir, "run", "--once")
	if st := status(t, dir); st.Last == nil || st.Last.Code != agent.Committed || st.Floor != 2 {
		t.Fatalf("after the package signed by the new key: %+v", st.Last)
	}
}
