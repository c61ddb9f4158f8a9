package delta

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ItemFormats returns the manifest item formats (manifest.Item.Format, as
// Format.String prints them) of the deltas a node applies that advertises
// the node-format versions in versions (manifest.Request.DeltaFormats):
// bsdiff40 and bsdiff43, which every node applies, and the node-format
// versions among versions that this package writes (FormatForNode of
// each). None advertised means version 1 alone: a node from before the
// field. Head-end and node both select items through this list, so a
// head-end that tailors a package for a node picks the route the node
// picks.
func ItemFormats(versions []int) []string {
	out := []string{FormatBSDIFF40.String(), FormatBSDIFF43.String()}
	if len(versions) == 0 {
		return append(out, FormatNode1.String())
	}
	for _, v := range versions {
		if f, err := FormatForNode([]int{v}); err == nil && !slices.Contains(out, f.String()) {
			out = append(out, f.String())
		}
	}
	return out
}

// ParseVersions parses a comma-separated list of node-format versions
// ("1", "1,2"), as the command-line flags that name them take.
func ParseVersions(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 {
			return nil, fmt.Errorf("delta: node-format versions %q: want a comma-separated list such as 1,2", s)
		}
		out = append(out, v)
	}
	return out, nil
}
