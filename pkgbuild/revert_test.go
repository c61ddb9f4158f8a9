package pkgbuild

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"meterupd/manifest"
)

// A modem item's "revert" in a spec names the item with the maker's file
// back; it reaches the manifest, which checks it.
func TestSpecRevert(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a04.bin": "MODEMFW A04\n", "a03.bin": "MODEMFW A03\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := func(revert string) (*Built, error) {
		spec := `{"sequence": 1, "items": [
			{"id": "fw", "component": "modem", "kind": "full", "to": "A04", "new": "a04.bin", "revert": "` + revert + `"},
			{"id": "fw-back", "component": "modem", "kind": "full", "to": "A03", "new": "a03.bin"}]}`
		p := filepath.Join(dir, "spec.json")
		if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := ReadSpec(p)
		if err != nil {
			return nil, err
		}
		return Build(s, dir)
	}
	b, err := build("fw-back")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Manifest.Items[0].Revert; got != "fw-back" {
		t.Errorf("manifest item revert = %q", got)
	}
	if err := b.Manifest.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	// Tailored for a node whose module runs A03, the package keeps the
	// way back with the forward item, though no plan takes it as a step.
	nm, err := RepackManifest(b.Manifest, Group{Component: manifest.ComponentModem, From: "A03", Hardware: -1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range nm.Items {
		ids = append(ids, it.ID)
	}
	if want := []string{"fw", "fw-back"}; !slices.Equal(ids, want) {
		t.Errorf("tailored items %v, want %v", ids, want)
	}
	b, err = build("nowhere")
	if err == nil {
		err = b.Manifest.Validate()
	}
	if !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("a revert naming no item: %v, want ErrInvalid", err)
	}
}
