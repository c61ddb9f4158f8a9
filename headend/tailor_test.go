package headend

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/manifest"
	"meterupd/pkgbuild"
)

// TestTailoredPackages: the request flow. The campaign sends the signed
// manifest alone; each node answers with its request; the head-end sends
// it the package tailored for its version group (the release-signed
// manifest with the payloads of the cheapest route from its version), one
// per group, cached, and it verifies under the release key.
func TestTailoredPackages(t *testing.T) {
	r := newCampaignRig(t, 0, nil, nil)
	spec, err := pkgbuild.ReadSpec("../testdata/pkg/spec.json")
	if err != nil {
		t.Fatal(err)
	}
	built, err := pkgbuild.Build(spec, "../testdata/pkg")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := pkgbuild.LoadSigner("../testdata/keys/test-ed25519.key.pem")
	if err != nil {
		t.Fatal(err)
	}
	dir := r.m.Packages.Dir
	if _, err := built.WriteFile(filepath.Join(dir, "sys-3.0.pkg"), signer); err != nil {
		t.Fatal(err)
	}
	r.m.Tailor = new(Tailor)
	r.m.Replica.OnRequest = r.m.OnRequest
	// Three nodes on 1.0, two on 2.0: two groups.
	var nodes []*fakeNode
	for i, v := range []string{"1.0", "1.0", "2.0", "1.0", "2.0"} {
		nodes = append(nodes, startFakeNode(t, r.url, "t-"+string(rune('a'+i)), v, "3.0", false, withFetch))
	}
	eventually(t, 20*time.Second, "nodes recorded", func() bool { ns, _ := r.store.Nodes(r.ctx); return len(ns) == 5 })
	c, err := r.m.Create(r.ctx, Campaign{ID: "sys-3.0", Package: "sys-3.0.pkg", Tailor: true, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Start(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	s := r.run(t, c.ID, time.Second)
	if s.Campaign.State != CampaignDone || s.Counts[TargetCommitted] != 5 {
		t.Fatalf("campaign %s %v, want done with 5 committed", s.Campaign.State, s.Counts)
	}
	ring, err := pkgbuild.LoadKeyring([]string{"../testdata/keys/test-ed25519.pub.pem"})
	if err != nil {
		t.Fatal(err)
	}
	byFrom := map[string]string{}
	for _, n := range nodes {
		n.mu.Lock()
		pk := n.packages
		n.mu.Unlock()
		if len(pk) != 1 || pk[0].URL == "" {
			t.Fatalf("node %s got packages %+v, want one tailored package", n.id, pk)
		}
		name := pk[0].URL[strings.LastIndex(pk[0].URL, "/")+1:]
		f, err := r.m.Packages.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(f)
		f.Close()
		// The release signature, untouched; only the route's payloads.
		op, err := manifest.OpenPackage(bytes.NewReader(buf.Bytes()), ring, manifest.Options{Tailored: true})
		if err != nil {
			t.Fatalf("node %s: tailored package refused: %v", n.id, err)
		}
		var ids []string
		for {
			it, pr, err := op.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("node %s: tailored package: %v", n.id, err)
				}
				break
			}
			if _, err := io.Copy(io.Discard, pr); err != nil {
				t.Fatalf("node %s: payload %s: %v", n.id, it.ID, err)
			}
			ids = append(ids, it.ID)
		}
		byFrom[name] = strings.Join(ids, " ")
	}
	// One package per group, each with the cheapest route of its group.
	got := map[string]bool{}
	for _, ids := range byFrom {
		got[ids] = true
	}
	if len(byFrom) != 2 || !got["sys-1-3"] || !got["sys-2-3"] {
		t.Fatalf("tailored packages %v, want two: sys-1-3 and sys-2-3", byFrom)
	}
}
