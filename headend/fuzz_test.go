package headend

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// FuzzOperatorInput: selectors and wave lists an operator types give a
// value or ErrBadInput; a parsed wave list rises to 100.
func FuzzOperatorInput(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/selector/*.txt")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.TrimSpace(string(b)))
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseSelector(s); err != nil && !errors.Is(err, ErrBadInput) {
			t.Fatalf("ParseSelector(%q) = %v, want ErrBadInput", s, err)
		}
		w, err := ParseWaves(s)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("ParseWaves(%q) = %v, want ErrBadInput", s, err)
			}
			return
		}
		for i := range w {
			if !(w[i] > 0 && w[i] <= 100) || (i > 0 && w[i] <= w[i-1]) {
				t.Fatalf("ParseWaves(%q) = %v: not rising within (0, 100]", s, w)
			}
		}
		if w[len(w)-1] != 100 {
			t.Fatalf("ParseWaves(%q) = %v: does not end at 100", s, w)
		}
	})
}
