package delta

import (
	"slices"
	"testing"
)

// TestItemFormats: what a node advertising some node-format versions
// selects: bsdiff always; version 1 alone when it advertises nothing;
// the newest format (what Diff writes for FormatNode) when it advertises
// every version this package applies; nothing for versions it does not
// know. (Stated without naming the versions in between, which a newer
// format renames.)
func TestItemFormats(t *testing.T) {
	bsdiff := []string{"bsdiff40", "bsdiff43"}
	v1 := append(slices.Clone(bsdiff), "node1")
	for _, tt := range []struct {
		versions []int
		want     []string
	}{
		{nil, v1},
		{[]int{1}, v1},
		{[]int{1, 1}, v1},
		{[]int{0, -3, 99}, bsdiff},
	} {
		if got := ItemFormats(tt.versions); !slices.Equal(got, tt.want) {
			t.Errorf("ItemFormats(%v) = %v, want %v", tt.versions, got, tt.want)
		}
	}
	all := ItemFormats(NodeFormats)
	newest := NodeFormats[len(NodeFormats)-1]
	if !slices.Contains(all, FormatNode.String()) || !slices.Contains(all, "node1") || len(all) != len(NodeFormats)+2 {
		t.Errorf("ItemFormats(%v) = %v, want bsdiff40, bsdiff43 and one name per version, node1 and node among them", NodeFormats, all)
	}
	if got := ItemFormats([]int{newest}); !slices.Equal(got, append(slices.Clone(bsdiff), FormatNode.String())) {
		t.Errorf("ItemFormats([%d]) = %v, want bsdiff and %s", newest, got, FormatNode)
	}
	// Every name is one ParseFormat takes back.
	for _, name := range all {
		if _, err := ParseFormat(name); err != nil {
			t.Errorf("ParseFormat(%q): %v", name, err)
		}
	}
}

// FuzzParseVersions: any flag value gives versions or an error, never a
// panic; the formats of any versions are at most those this package
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
		if len(names) > len(NodeFormats)+2 {
			t.Fatalf("ItemFormats(%v) = %v: more formats than there are", vs, names)
		}
		for _, n := range names {
			if _, err := ParseFormat(n); err != nil {
				t.Fatalf("ItemFormats(%v) names %q: %v", vs, n, err)
			}
		}
	})
}
