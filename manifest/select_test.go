package manifest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ids(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Item.ID)
	}
	return out
}

func node(sys string) NodeInfo {
	n := NodeInfo{VendorID: 0x4d45, ClassID: 3, DeviceType: "em300", Hardware: 3, Installed: map[Component]string{}}
	if sys != "" {
		n.Installed[ComponentSystem] = sys
	}
	return n
}

// chainOnly is the three-item manifest without the skip delta.
func chainOnly() *Manifest {
	m, _ := threeItems()
	m.Items = m.Items[:2]
	return m
}

func TestSelectPath(t *testing.T) {
	m, _ := threeItems()
	full := *m
	full.Items = append(append([]Item(nil), chainOnly().Items...), Item{
		ID: "sys-3-full", Component: ComponentSystem, Kind: KindFull, To: "3.0", Payload: "sys-3.0.img",
		Size: 100, Digest: make([]byte, 32), TargetDigest: make([]byte, 32), TargetSize: 100,
	})
	expensiveSkip, _ := threeItems()
	expensiveSkip.Items[2].Size = 250 // 1→3 costs 250, 1→2→3 costs 250: tie → fewest hops
	dearerSkip, _ := threeItems()
	dearerSkip.Items[2].Size = 251 // chain is cheaper by a byte

	for _, tc := range []struct {
		name      string
		m         *Manifest
		installed string
		want      []string
	}{
		{"chain from v1", chainOnly(), "1.0", []string{"sys-1-2", "sys-2-3"}},
		{"chain from v2 skips passed version", chainOnly(), "2.0", []string{"sys-2-3"}},
		{"already at target", chainOnly(), "3.0", nil},
		{"newer than every item", chainOnly(), "4.0", nil},
		{"skip delta is cheaper", m, "1.0", []string{"sys-1-3"}},
		{"equal bytes: fewest hops", expensiveSkip, "1.0", []string{"sys-1-3"}},
		{"chain cheaper than skip delta", dearerSkip, "1.0", []string{"sys-1-2", "sys-2-3"}},
		{"full image cheaper than chain", &full, "1.0", []string{"sys-3-full"}},
		{"full image when nothing installed", &full, "", []string{"sys-3-full"}},
		{"full image from a version no delta knows", &full, "0.5", []string{"sys-3-full"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := tc.m.Select(node(tc.installed))
			if err != nil {
				t.Fatalf("Select = %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(plan)); diff != "" {
				t.Errorf("Select(installed %q) steps (-want +got):\n%s", tc.installed, diff)
			}
			if !plan.Streamable() && len(plan.Steps) > 0 && tc.name == "chain from v1" {
				t.Errorf("plan of an ordered chain is not streamable")
			}
		})
	}
}

func TestSelectRejects(t *testing.T) {
	explicitOld := chainOnly()
	explicitOld.Targets = []Target{{Component: ComponentSystem, Version: "2.0"}}
	prereq := chainOnly()
	prereq.Items[1].Prereqs = []Prereq{{Component: ComponentModem, Version: "5.0"}}
	selfPrereq := chainOnly()
	selfPrereq.Items[0].Prereqs = []Prereq{{Component: ComponentSystem, Version: "1.5"}}

	other := node("1.0")
	other.DeviceType = "wm100"
	oldHW := node("1.0")
	oldHW.Hardware = 1
	newHW := node("1.0")
	newHW.Hardware = 6
	otherVendor := node("1.0")
	otherVendor.VendorID = 1

	for _, tc := range []struct {
		name string
		m    *Manifest
		n    NodeInfo
		want error
	}{
		{"other device type", chainOnly(), other, ErrNotForDevice},
		{"hardware below range", chainOnly(), oldHW, ErrNotForDevice},
		{"hardware above range", chainOnly(), newHW, ErrNotForDevice},
		{"other vendor", chainOnly(), otherVendor, ErrNotForDevice},
		{"gap in version path", chainOnly(), node("0.9"), ErrGap},
		{"nothing installed, deltas only", chainOnly(), node(""), ErrGap},
		{"gap in the middle", func() *Manifest { m := chainOnly(); m.Items[1].From = "2.1"; return m }(), node("1.0"), ErrGap},
		{"explicit target older, no downgrade flag", explicitOld, node("3.0"), ErrDowngrade},
		{"missing prerequisite", prereq, node("1.0"), ErrPrerequisite},
		{"missing prerequisite on own component", selfPrereq, node("1.0"), ErrPrerequisite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := tc.m.Select(tc.n)
			if !errors.Is(err, tc.want) || plan.Steps != nil {
				t.Errorf("Select = %v, %v; want no plan, %v", ids(plan), err, tc.want)
			}
		})
	}
}

func TestSelectDowngradeWithSignedFlag(t *testing.T) {
	m, _ := threeItems()
	m.Downgrade = true
	m.Targets = []Target{{Component: ComponentSystem, Version: "1.0"}}
	m.Items = append(m.Items, Item{
		ID: "sys-1-full", Component: ComponentSystem, Kind: KindFull, To: "1.0", Payload: "sys-1.0.img",
		Size: 100, Digest: make([]byte, 32), TargetDigest: make([]byte, 32), TargetSize: 100,
	})
	plan, err := m.Select(node("3.0"))
	if err != nil {
		t.Fatalf("Select(downgrade flag) = %v", err)
	}
	if diff := cmp.Diff([]string{"sys-1-full"}, ids(plan)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	m.Downgrade = false
	if _, err := m.Select(node("3.0")); !errors.Is(err, ErrDowngrade) {
		t.Errorf("Select(no flag) = %v, want ErrDowngrade", err)
	}
}

func TestSelectOrdersPrerequisiteComponentFirst(t *testing.T) {
	m := chainOnly()
	m.Items[0].Prereqs = []Prereq{{Component: ComponentModem, Version: "5.0"}}
	m.Items = append(m.Items, Item{
		ID: "modem-5", Component: ComponentModem, Kind: KindFull, To: "5.0", Payload: "modem-5.0.fw",
		Size: 10, Digest: make([]byte, 32), TargetDigest: make([]byte, 32), TargetSize: 10,
	})
	n := node("1.0")
	n.Installed[ComponentModem] = "4.2"
	plan, err := m.Select(n)
	if err != nil {
		t.Fatalf("Select = %v", err)
	}
	if diff := cmp.Diff([]string{"modem-5", "sys-1-2", "sys-2-3"}, ids(plan)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if plan.Streamable() {
		t.Errorf("Streamable() = true for a plan out of container order")
	}
	n.Installed[ComponentModem] = "5.1" // already satisfied: modem is at its target too
	plan, err = m.Select(n)
	if err != nil {
		t.Fatalf("Select = %v", err)
	}
	if diff := cmp.Diff([]string{"sys-1-2", "sys-2-3"}, ids(plan)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

func TestNewRequest(t *testing.T) {
	m := chainOnly()
	n := node("1.0")
	n.Installed[ComponentModem] = "4.2"
	got := NewRequest(n, 6, m)
	want := Request{VendorID: 0x4d45, ClassID: 3, DeviceType: "em300", Hardware: 3,
		Versions: map[string]string{"system": "1.0", "modem": "4.2"}, Sequence: 6,
		Want: map[string]string{"system": "3.0"}, Schemas: []uint{SchemaVersion, SchemaBlocks}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewRequest (-want +got):\n%s", diff)
	}
}

func TestSelectItemPrerequisite(t *testing.T) {
	m := chainOnly()
	m.Items = append(m.Items, Item{
		ID: "modem-5", Component: ComponentModem, Kind: KindFull, To: "5.0", Payload: "modem-5.0.fw",
		Size: 10, Digest: make([]byte, 32), TargetDigest: make([]byte, 32), TargetSize: 10,
	})
	m.Items[1].Prereqs = []Prereq{{Item: "modem-5"}}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	n := node("1.0")
	n.Installed[ComponentModem] = "4.0"
	plan, err := m.Select(n)
	if err != nil {
		t.Fatalf("Select = %v", err)
	}
	if diff := cmp.Diff([]string{"modem-5", "sys-1-2", "sys-2-3"}, ids(plan)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	want := []Prereq{{Component: ComponentModem, Version: "5.0", Item: "modem-5"}}
	if diff := cmp.Diff(want, plan.Steps[2].Item.Prereqs); diff != "" {
		t.Errorf("resolved prereqs (-want +got):\n%s", diff)
	}
	if m.Items[1].Prereqs[0].Version != "" {
		t.Errorf("Select changed the manifest")
	}
	// The referenced item does not apply to this node: missing prerequisite.
	m.Items[2].DeviceTypes = []string{"wm100"}
	if _, err := m.Select(n); !errors.Is(err, ErrPrerequisite) {
		t.Errorf("Select without the prerequisite item = %v, want ErrPrerequisite", err)
	}
	// A reference to no item is refused at decode.
	m.Items[1].Prereqs = []Prereq{{Item: "nope"}}
	if _, err := Encode(m); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode(dangling item prerequisite) = %v, want ErrInvalid", err)
	}
}

// TestSelectDeltaFormats: a node selects only delta items in a format it
// applies (NodeInfo.DeltaFormats): the cheaper version-2 skip delta for a
// node that reads it, the version-1 one or the full image for a node that
// does not, and nothing for a node that reads none of the formats.
func TestSelectDeltaFormats(t *testing.T) {
	full := Item{ID: "sys-3-full", Component: ComponentSystem, Kind: KindFull, To: "3.0", Payload: "sys-3.0.img",
		Size: 1000, Digest: make([]byte, 32), TargetDigest: make([]byte, 32), TargetSize: 1000}
	withV1 := func(withFull bool) *Manifest {
		m, _ := threeItems()
		m.Items = m.Items[2:] // the 1→3 skip delta, 200 bytes
		m.Items[0].Format = "node"
		v1 := m.Items[0]
		v1.ID, v1.Format, v1.Payload, v1.Size = "sys-1-3-v1", "node1", "sys-1.0-3.0.v1", 300
		m.Items = append(m.Items, v1)
		if withFull {
			m.Items = append(m.Items, full)
		}
		return m
	}
	onlyV2 := withV1(true)
	onlyV2.Items = slices.Delete(onlyV2.Items, 1, 2)
	for _, tc := range []struct {
		name    string
		m       *Manifest
		formats []string
		want    []string
		err     error
	}{
		{"any format: the cheapest", withV1(true), nil, []string{"sys-1-3"}, nil},
		{"reads both: the cheapest", withV1(true), []string{"bsdiff40", "bsdiff43", "node1", "node"}, []string{"sys-1-3"}, nil},
		{"names match in any case", withV1(true), []string{"NODE"}, []string{"sys-1-3"}, nil},
		{"reads version 1: the version-1 delta", withV1(true), []string{"bsdiff40", "bsdiff43", "node1"}, []string{"sys-1-3-v1"}, nil},
		{"reads version 1, no v1 delta: the full image", onlyV2, []string{"bsdiff40", "bsdiff43", "node1"}, []string{"sys-3-full"}, nil},
		{"reads no node format, no full image: no route", withV1(false), []string{"bsdiff40"}, nil, ErrNotForDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := node("1.0")
			n.DeltaFormats = tc.formats
			plan, err := tc.m.Select(n)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Select = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, ids(plan)); diff != "" {
				t.Errorf("Select(formats %v) steps (-want +got):\n%s", tc.formats, diff)
			}
		})
	}
}
