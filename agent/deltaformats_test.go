package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"meterupd/agent"
	"meterupd/boards/sim"
	"meterupd/delta"
	"meterupd/manifest"
)

// TestDeltaFormatsSelect: compatible on the air, on the node. A release
// carries 2.0.0 → 3.0.0 twice, in node format version 2 and version 1. A
// node provisioned to advertise version 1 alone says so in its update
// request and installs the version-1 delta; a node that reads both
// advertises both and installs the cheaper one. Each delta applies: the
// idle slot is hashed against the signed target digest before the update
// counts as installed.
func TestDeltaFormatsSelect(t *testing.T) {
	key, kr := releaseKey(t)
	for _, tc := range []struct {
		name     string
		formats  []int // Identity.DeltaFormats
		wantReq  []int // what its request advertises
		wantNode bool  // the version-2 delta when it is the cheaper
	}{
		{"reads both", nil, delta.NodeFormats, true},
		{"reads version 1", []int{1}, []int{1}, false},
		{"names a version it does not apply", []int{1, 7}, []int{1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "node")
			commitToB(t, dir) // 2.0.0 runs from B; its image is new.img
			old, err := os.ReadFile(filepath.Join(dir, "new.img"))
			if err != nil {
				t.Fatal(err)
			}
			img := sim.Image(len(old), "3.0.0")
			p2, err := delta.Diff(old, img, delta.FormatNode)
			if err != nil {
				t.Fatal(err)
			}
			p1, err := delta.Diff(old, img, delta.FormatNode1)
			if err != nil {
				t.Fatal(err)
			}
			src, dst := sha256.Sum256(old), sha256.Sum256(img)
			item := func(id, format string, p []byte) manifest.Item {
				d := sha256.Sum256(p)
				return manifest.Item{ID: id, Component: manifest.ComponentSystem, Kind: manifest.KindDelta, Format: format,
					From: "2.0.0", To: "3.0.0", Payload: id + ".delta", Size: uint64(len(p)), Digest: d[:],
					SourceDigest: src[:], TargetDigest: dst[:], TargetSize: uint64(len(img))}
			}
			m := &manifest.Manifest{Schema: 1, Sequence: 5, Items: []manifest.Item{item("v2", "node", p2), item("v1", "node1", p1)}}
			pkg := signPackage(t, key, m, p2, p1)
			want := "v1"
			if tc.wantNode && len(p2) < len(p1) {
				want = "v2"
			}
			t.Logf("version-2 delta %d bytes, version-1 delta %d bytes: the node takes %s", len(p2), len(p1), want)

			b, err := sim.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store"), Keys: kr,
				Identity: agent.Identity{DeltaFormats: tc.formats}})
			if err != nil {
				t.Fatal(err)
			}
			req, err := a.Request(m)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(req.DeltaFormats, tc.wantReq) || req.Want["system"] != "3.0.0" {
				t.Errorf("request advertises %v (wants %v), want %v (3.0.0)", req.DeltaFormats, req.Want, tc.wantReq)
			}
			if err := a.InstallPackage(ctx, bytes.NewReader(pkg), false); err != nil {
				t.Fatalf("InstallPackage = %v", err)
			}
			u := a.Record().Update
			if u == nil || u.Phase != agent.Installed || u.Item.Version != "3.0.0" || len(u.Checks) != 1 || u.Checks[0].Item != want {
				t.Fatalf("after the install: %+v, want 3.0.0 installed from item %s (v2 %d bytes, v1 %d bytes)", u, want, len(p2), len(p1))
			}
		})
	}
}
