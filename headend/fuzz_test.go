package headend

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseUpdate: any bytes on state/<id>/update give a report, a desired
// change or ErrBadInput, never a panic; a report's reported document is
// kept as sent (the history shows what the node said).
func FuzzParseUpdate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/update/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, _, err := parseUpdate(b)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("parseUpdate(%q) = %v, want ErrBadInput", b, err)
			}
			return
		}
		if u.Seq != nil && !json.Valid(u.Reported) {
			t.Fatalf("parseUpdate(%q): reported %q is not JSON", b, u.Reported)
		}
	})
}
