package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"meterupd/agent"
	"meterupd/boards/sim"
	"meterupd/manifest"
)

// A head-end may send a node only the payloads of its install path, under
// the manifest signed for all (issue 10, the request flow): the node
// installs from it; a package that leaves out a payload the node needs is
// refused and changes nothing.
func TestTailoredPackage(t *testing.T) {
	key, kr := releaseKey(t)
	img := sim.Image(256<<10, "3.0.0")
	other := []byte("a payload for another group of meters")
	d, od := sha256.Sum256(img), sha256.Sum256(other)
	src := sha256.Sum256([]byte("1.0.0"))
	m := &manifest.Manifest{Schema: 1, Sequence: 5, Items: []manifest.Item{
		{ID: "other", Component: manifest.ComponentSystem, Kind: manifest.KindDelta, Format: "bsdiff40", From: "1.9.0", To: "3.0.0",
			Payload: "other.delta", Size: uint64(len(other)), Digest: od[:], SourceDigest: src[:], TargetDigest: d[:], TargetSize: uint64(len(img))},
		{ID: "sys-3.0.0", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "3.0.0",
			Payload: "sys-3.0.0.img", Size: uint64(len(img)), Digest: d[:], TargetDigest: d[:], TargetSize: uint64(len(img))},
	}}
	body, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.Sign(body, key)
	if err != nil {
		t.Fatal(err)
	}
	// tailored writes the package with only the payloads in keep.
	tailored := func(keep ...int) *bytes.Buffer {
		var pkg bytes.Buffer
		w, err := manifest.NewWriter(&pkg, env, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range [][]byte{other, img} {
			if len(keep) > 0 && keep[0] == i {
				keep = keep[1:]
				err = w.WritePayload(bytes.NewReader(p))
			} else {
				err = w.Skip()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return &pkg
	}
	open := func(dir string) (*agent.Agent, func()) {
		b, err := sim.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store"), Keys: kr})
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		return a, func() { b.Close() }
	}

	t.Run("the payload it needs is absent", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "node")
		commitToB(t, dir)
		before := nodeFiles(t, dir)
		a, done := open(dir)
		defer done()
		err := a.InstallPackage(context.Background(), tailored(0), false)
		if !errors.Is(err, manifest.ErrMissingPayload) {
			t.Fatalf("InstallPackage(without the needed payload) = %v, want ErrMissingPayload", err)
		}
		if after := nodeFiles(t, dir); !maps.Equal(before, after) {
			t.Errorf("a refused package changed the node's files")
		}
	})
	t.Run("only what it needs", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "node")
		commitToB(t, dir)
		a, done := open(dir)
		defer done()
		if err := a.InstallPackage(context.Background(), tailored(1), false); err != nil {
			t.Fatalf("InstallPackage(tailored) = %v", err)
		}
		u := a.Record().Update
		if u == nil || u.Phase != agent.Installed || u.Item.Version != "3.0.0" {
			t.Fatalf("after the install: %+v, want 3.0.0 installed", u)
		}
	})
}
