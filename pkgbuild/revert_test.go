package pkgbuild

import (
	"errors"
	"os"
	"path/filepath"
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
	b, err = build("nowhere")
	if err == nil {
		err = b.Manifest.Validate()
	}
	if !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("a revert naming no item: %v, want ErrInvalid", err)
	}
}
