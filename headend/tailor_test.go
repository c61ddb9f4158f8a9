package headend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/delta"
	"meterupd/manifest"
	"meterupd/pkgbuild"
	"meterupd/shadow"
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
	s := r.runTailored(t, 5)
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

// TestTailorDeltaFormats: compatible on the air. A release carries the
// 1.0 → 3.0 delta in the newest node format ("node") and in version 1,
// and a full image; each node is sent only a delta in a format its
// request advertises: a node that reads only the newest version that
// delta, a version-1 node (or one from before the field) the version-1
// delta, a node that reads every version the cheaper of the two, a node
// that reads none the full image. Without a version-1 delta or a full
// image, a version-1 node is sent nothing (a typed error) rather than a
// delta it cannot apply.
func TestTailorDeltaFormats(t *testing.T) {
	ctx := context.Background()
	ring, err := pkgbuild.LoadKeyring([]string{"../testdata/keys/test-ed25519.pub.pem"})
	if err != nil {
		t.Fatal(err)
	}
	newest := delta.NodeFormats[len(delta.NodeFormats)-1]
	pk := &Packages{Dir: t.TempDir()}
	all := writeRelease(t, pk.Dir, "all.pkg", true, true)
	writeRelease(t, pk.Dir, "newonly.pkg", false, false)
	// The cheaper of the two deltas: what a node reading both is sent.
	size := map[string]uint64{}
	for _, it := range all.Items {
		size[it.ID] = it.Size
	}
	cheaper := "sys-1-3@new"
	if size["sys-1-3-v1"] < size["sys-1-3"] {
		cheaper = "sys-1-3-v1@1"
	}
	// contents: the payloads of a tailored package, each delta with the
	// version its header carries: @1, or @new for any later one.
	// node-format version its header carries.
	contents := func(name string) string {
		t.Helper()
		f, err := pk.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		op, err := manifest.OpenPackage(f, ring, manifest.Options{Tailored: true})
		if err != nil {
			t.Fatalf("tailored package %s refused: %v", name, err)
		}
		var got []string
		for {
			it, pr, err := op.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("tailored package %s: %v", name, err)
			}
			b, err := io.ReadAll(pr)
			if err != nil {
				t.Fatalf("payload %s: %v", it.ID, err)
			}
			if it.Kind == manifest.KindDelta && len(b) > 8 && string(b[:8]) == "MTRDLT01" {
				v := "new"
				if b[8] == 1 {
					v = "1"
				}
				got = append(got, it.ID+"@"+v)
			} else {
				got = append(got, it.ID)
			}
		}
		return strings.Join(got, " ")
	}
	st := openStore(t, filepath.Join(t.TempDir(), "h.db"), t0)
	tl := new(Tailor)
	names := map[string]string{} // formats → tailored package
	for _, tt := range []struct {
		pkg      string
		advertis []int
		want     string // the tailored package's payloads; "!": an error
	}{
		{"all.pkg", []int{newest}, "sys-1-3@new"},
		{"all.pkg", []int{1}, "sys-1-3-v1@1"},
		{"all.pkg", nil, "sys-1-3-v1@1"}, // a node from before the field
		{"all.pkg", delta.NodeFormats, cheaper},
		{"all.pkg", []int{99}, "sys-3-full"}, // no node format it reads
		{"newonly.pkg", delta.NodeFormats, "sys-1-3@new"},
		{"newonly.pkg", []int{1}, "!"},
	} {
		req := manifest.Request{DeviceType: "em300", Hardware: 1, Versions: map[string]string{"system": "1.0"},
			Schemas: manifest.Schemas, DeltaFormats: tt.advertis}
		c := Campaign{ID: strings.TrimSuffix(tt.pkg, ".pkg"), Package: tt.pkg}
		p, err := tl.Package(ctx, st, pk, c, req)
		if tt.want == "!" {
			if !errors.Is(err, manifest.ErrNotForDevice) && !errors.Is(err, manifest.ErrGap) {
				t.Errorf("%s for a node advertising %v: %v, %v; want no package (not for device, or no route)", tt.pkg, tt.advertis, p.Name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s for a node advertising %v: %v", tt.pkg, tt.advertis, err)
		}
		if got := contents(p.Name); got != tt.want {
			t.Errorf("%s for a node advertising %v: payloads %q, want %q", tt.pkg, tt.advertis, got, tt.want)
		}
		names[fmt.Sprint(tt.pkg, tt.advertis)] = p.Name
	}
	// One package per group: a node without the field is a version-1 node;
	// version-1 nodes and nodes reading the newest version, on one
	// version, are two groups.
	if a, b := names["all.pkg[1]"], names["all.pkg[]"]; a != b {
		t.Errorf("version-1 node got %s, node without the field %s: want the same package", a, b)
	}
	if a, b := names["all.pkg[1]"], names[fmt.Sprint("all.pkg", []int{newest})]; a == b {
		t.Errorf("version-1 nodes and nodes reading version %d got the same package %s", newest, a)
	}
}

// writeRelease writes release name into dir, signed with the test key: the
// 1.0 → 3.0 delta of testdata/pkg in the newest node format (sys-1-3), with
// withV1 in version 1 too (sys-1-3-v1), with withFull the 3.0 image
// (sys-3-full).
func writeRelease(t *testing.T, dir, name string, withV1, withFull bool) *manifest.Manifest {
	t.Helper()
	abs, err := filepath.Abs("../testdata/pkg")
	if err != nil {
		t.Fatal(err)
	}
	img := func(v string) string { return filepath.Join(abs, "system-"+v+".img") }
	items := []pkgbuild.SpecItem{{ID: "sys-1-3", Format: "node", From: "1.0", To: "3.0", Old: img("1.0"), New: img("3.0")}}
	if withV1 {
		items = append(items, pkgbuild.SpecItem{ID: "sys-1-3-v1", Format: "node1", From: "1.0", To: "3.0", Old: img("1.0"), New: img("3.0")})
	}
	if withFull {
		full := manifest.KindFull
		items = append(items, pkgbuild.SpecItem{ID: "sys-3-full", Kind: &full, To: "3.0", New: img("3.0")})
	}
	sys := manifest.ComponentSystem
	spec := &pkgbuild.Spec{Sequence: 3, VendorID: 19781, ClassID: 3, Defaults: pkgbuild.SpecItem{Component: &sys}, Items: items}
	built, err := pkgbuild.Build(spec, abs)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := pkgbuild.LoadSigner("../testdata/keys/test-ed25519.key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := built.WriteFile(filepath.Join(dir, name), signer); err != nil {
		t.Fatal(err)
	}
	return built.Manifest
}

// TestTailorNotApplicable: a node the release cannot serve (it advertises
// no delta format, so version 1, and the release has only a delta in the
// newest format) is sent no package and counts failed, result 104, at once: the
// campaign finishes without waiting out the wave's hour; the node that
// reads every version commits.
func TestTailorNotApplicable(t *testing.T) {
	r := newCampaignRig(t, 0, nil, nil)
	writeRelease(t, r.m.Packages.Dir, "sys-3.0.pkg", false, false)
	r.m.Tailor = new(Tailor)
	r.m.Replica.OnRequest = r.m.OnRequest
	current := startFakeNode(t, r.url, "t-new", "1.0", "3.0", false, withFetch)
	old := startFakeNode(t, r.url, "t-old", "1.0", "3.0", false, withFetch, withDeltaFormats())
	s := r.runTailored(t, 2)
	if s.Campaign.State != CampaignDone || s.Counts[TargetCommitted] != 1 || s.Counts[TargetFailed] != 1 {
		t.Fatalf("campaign %s %v, want done with 1 committed and 1 failed", s.Campaign.State, s.Counts)
	}
	ts, err := r.store.Targets(r.ctx, s.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range ts {
		if tg.Node == "t-old" && (tg.State != TargetFailed || tg.Result != shadow.ResultNotApplicable) {
			t.Errorf("old node's target %+v, want failed with result 104", tg)
		}
	}
	for n, want := range map[*fakeNode]int{current: 1, old: 0} {
		n.mu.Lock()
		got := len(n.packages)
		n.mu.Unlock()
		if got != want {
			t.Errorf("node %s was sent %d packages, want %d", n.id, got, want)
		}
	}
}

// runTailored waits for the rig's n nodes to be known, then runs campaign
// sys-3.0 of package sys-3.0.pkg in tailor mode to its end.
func (r *campaignRig) runTailored(t *testing.T, n int) Status {
	t.Helper()
	eventually(t, 20*time.Second, "nodes recorded", func() bool { ns, _ := r.store.Nodes(r.ctx); return len(ns) == n })
	c, err := r.m.Create(r.ctx, Campaign{ID: "sys-3.0", Package: "sys-3.0.pkg", Tailor: true, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Start(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return r.run(t, c.ID, time.Second)
}
