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
