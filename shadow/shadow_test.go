package shadow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var sum = strings.Repeat("ab", 32)

func TestParseDelta(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		maxSize int64
		want    error  // nil: accepted
		field   string // the field a refusal names
	}{
		{"url", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"https://h/p","sha256":"` + sum + `","size":5}}}`, 0, nil, ""},
		{"stream", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"stream":"s-1","sha256":"` + sum + `","size":5}}}`, 0, nil, ""},
		{"cancel alone", `{"epoch":1,"version":2,"desired":{"job":"j","cancel":true}}`, 0, nil, ""},
		{"empty desired", `{"epoch":1,"version":2,"desired":{}}`, 0, nil, ""},
		{"unknown fields ignored", `{"epoch":1,"version":2,"x":{"y":1},"desired":{"z":true}}`, 0, nil, ""},
		{"not an object", `[1,2]`, 0, ErrSyntax, ""},
		{"not json", `hello`, 0, ErrSyntax, ""},
		{"trailing data", `{"epoch":1,"version":2,"desired":{}} {}`, 0, ErrSyntax, ""},
		{"too deep", `{"a":[[[[[[[[1]]]]]]]]}`, 0, ErrTooDeep, ""},
		{"version too large", `{"epoch":1,"version":18446744073709551616,"desired":{}}`, 0, ErrSyntax, "version"},
		{"negative version", `{"epoch":1,"version":-1,"desired":{}}`, 0, ErrSyntax, "version"},
		{"version as string", `{"epoch":1,"version":"2","desired":{}}`, 0, ErrSyntax, "version"},
		{"file scheme", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"file:///etc/passwd","sha256":"` + sum + `","size":5}}}`, 0, ErrScheme, "desired.package.url"},
		{"ftp scheme", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"ftp://h/p","sha256":"` + sum + `","size":5}}}`, 0, ErrScheme, "desired.package.url"},
		{"url and stream", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"http://h/p","stream":"s","sha256":"` + sum + `","size":5}}}`, 0, ErrInvalid, "desired.package"},
		{"no source", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"sha256":"` + sum + `","size":5}}}`, 0, ErrInvalid, "desired.package"},
		{"short digest", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"http://h/p","sha256":"abcd","size":5}}}`, 0, ErrInvalid, "desired.package.sha256"},
		{"zero size", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"http://h/p","sha256":"` + sum + `","size":0}}}`, 0, ErrInvalid, "desired.package.size"},
		{"larger than the room", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"url":"http://h/p","sha256":"` + sum + `","size":1000}}}`, 999, ErrTooLarge, "desired.package.size"},
		{"no job", `{"epoch":1,"version":2,"desired":{"package":{"url":"http://h/p","sha256":"` + sum + `","size":5}}}`, 0, ErrInvalid, "desired.job"},
		{"job with control character", `{"epoch":1,"version":2,"desired":{"job":"a\u0007b","cancel":true}}`, 0, ErrInvalid, "desired.job"},
		{"bad activate", `{"epoch":1,"version":2,"desired":{"job":"j","activate":"tomorrow","cancel":true}}`, 0, ErrInvalid, "desired.activate"},
		{"stream name with slash", `{"epoch":1,"version":2,"desired":{"job":"j","package":{"stream":"../x","sha256":"` + sum + `","size":5}}}`, 0, ErrInvalid, "desired.package.stream"},
		{"oversize document", `{"epoch":1,"version":2,"desired":{"job":"` + strings.Repeat("x", MaxDocSize) + `"}}`, 0, ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDelta([]byte(tt.doc), tt.maxSize)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseDelta(%.60q) = %v, want accepted", tt.doc, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseDelta(%.60q) = %v, want %v", tt.doc, err, tt.want)
			}
			var de *DocError
			if !errors.As(err, &de) || de.Field != tt.field {
				t.Fatalf("ParseDelta(%.60q) = %v, want a DocError on field %q", tt.doc, err, tt.field)
			}
		})
	}
}

func TestActivation(t *testing.T) {
	for _, tt := range []struct {
		in   string
		mode string
		at   time.Time
	}{
		{"", ActivateNow, time.Time{}},
		{"now", ActivateNow, time.Time{}},
		{"command", ActivateCommand, time.Time{}},
		{"2026-12-01T03:00:00+01:00", "at", time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)},
	} {
		d := Desired{Activate: tt.in}
		mode, at, err := d.Activation()
		if err != nil || mode != tt.mode || !at.Equal(tt.at) {
			t.Errorf("Activation(%q) = %q, %v, %v; want %q, %v", tt.in, mode, at, err, tt.mode, tt.at)
		}
	}
}

func TestGate(t *testing.T) {
	g := Gate{Epoch: 5, Version: 10}
	for _, tt := range []struct {
		epoch, version uint64
		want           Verdict
	}{
		{5, 11, Act},
		{5, 10, Duplicate},
		{5, 9, Stale},
		{4, 1000, Stale},  // an old replica's retained document
		{6, 1, Act},       // the replica was rebuilt: a new epoch counts again
		{6, 0, Act},       //
		{5, 1 << 63, Act}, // a large version is still a version
		{0, 0, Stale},     // a zero document after the gate moved
	} {
		if got := g.Check(Delta{Epoch: tt.epoch, Version: tt.version}); got != tt.want {
			t.Errorf("Gate%v.Check(epoch %d, version %d) = %v, want %v", g, tt.epoch, tt.version, got, tt.want)
		}
	}
	// A fresh node acts on the first document a replica sends (versions
	// start at 1) and never twice on it.
	var fresh Gate
	d := Delta{Epoch: 1, Version: 1}
	if v := fresh.Check(d); v != Act {
		t.Fatalf("fresh gate: %v, want act", v)
	}
	if v := fresh.After(d).Check(d); v != Duplicate {
		t.Fatalf("after acting: %v, want duplicate", v)
	}
}

func TestSeedsParse(t *testing.T) {
	accepted := map[string]bool{"url-now.json": true, "stream-at.json": true, "cancel.json": true, "manifest-only.json": true, "empty.json": true, "unknown-field.json": true}
	paths, _ := filepath.Glob(filepath.Join("testdata", "desired", "*.json"))
	if len(paths) < len(accepted) {
		t.Fatalf("only %d seeds", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseDelta(b, 0)
		if got, want := err == nil, accepted[filepath.Base(p)]; got != want {
			t.Errorf("%s: accepted=%v (%v), want %v", p, got, err, want)
		}
	}
}

// FuzzParseDelta: no input panics; an accepted document encodes and parses
// back to the same value.
func FuzzParseDelta(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "desired", "*.json"))
	if len(paths) == 0 {
		f.Fatal("no seeds in testdata/desired")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDelta(b, 1<<30)
		if err != nil {
			var de *DocError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DocError", err)
			}
			return
		}
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDelta(again, 1<<30)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, again)
		}
		if diff := cmp.Diff(d, d2); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
	})
}
