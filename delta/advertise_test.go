package delta

import (
	"slices"
	"testing"
)

// TestItemFormats: what a node advertising some node-format versions
// selects; bsdiff always, version 1 when it advertises nothing.
func TestItemFormats(t *testing.T) {
	for _, tt := range []struct {
		versions []int
		want     []string
	}{
		{nil, []string{"bsdiff40", "bsdiff43", "node1"}},
		{[]int{1}, []string{"bsdiff40", "bsdiff43", "node1"}},
		{[]int{1, 2}, []string{"bsdiff40", "bsdiff43", "node1", "node"}},
		{[]int{2}, []string{"bsdiff40", "bsdiff43", "node"}},
		{[]int{2, 2, 9}, []string{"bsdiff40", "bsdiff43", "node"}},
		{[]int{9}, []string{"bsdiff40", "bsdiff43"}},
	} {
		if got := ItemFormats(tt.versions); !slices.Equal(got, tt.want) {
			t.Errorf("ItemFormats(%v) = %v, want %v", tt.versions, got, tt.want)
		}
	}
	// Every name is one ParseFormat takes back.
	for _, name := range ItemFormats(NodeFormats) {
		if _, err := ParseFormat(name); err != nil {
			t.Errorf("ParseFormat(%q): %v", name, err)
		}
	}
}

// FuzzParseVersions: any flag value gives versions or an error, never a
// panic; the formats of any versions are at most the four this package
// writes, each one ParseFormat takes back.
func FuzzParseVersions(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParseVersions(s)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v < 0 {
				t.Fatalf("ParseVersions(%q) = %v: a negative version", s, vs)
			}
		}
		names := ItemFormats(vs)
		if len(names) > 4 {
			t.Fatalf("ItemFormats(%v) = %v: more formats than there are", vs, names)
		}
		for _, n := range names {
			if _, err := ParseFormat(n); err != nil {
				t.Fatalf("ItemFormats(%v) names %q: %v", vs, n, err)
			}
		}
	})
}
