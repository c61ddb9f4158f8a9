package manifest

import (
	"errors"
	"testing"
)

// revertPair makes items[2] of threeItems a modem item to "A04" whose
// revert file is a fourth item back to "A03".
func revertPair(t *testing.T) *Manifest {
	t.Helper()
	m, _ := threeItems()
	fw := &m.Items[2]
	fw.Component, fw.Kind, fw.From, fw.SourceDigest, fw.Format, fw.To = ComponentModem, KindFull, "", nil, "", "A04"
	back := *fw
	back.ID, back.To, back.Payload, back.Prereqs = "back", "A03", "back.bin", nil
	fw.Revert = "back"
	m.Items = append(m.Items, back)
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate(modem item with a revert file) = %v", err)
	}
	return m
}

// Revert (key -1, optional) names another modem item leading back to an
// older version; it survives the round trip.
func TestRevert(t *testing.T) {
	got := roundTrip(t, revertPair(t))
	if got.Items[2].Revert != "back" || got.Items[3].Revert != "" {
		t.Errorf("after the round trip: %q, %q", got.Items[2].Revert, got.Items[3].Revert)
	}
	for _, tc := range []struct {
		name string
		f    func(*Manifest)
	}{
		{"system item", func(m *Manifest) { m.Items[0].Revert = "back" }},
		{"itself", func(m *Manifest) { m.Items[2].Revert = m.Items[2].ID }},
		{"missing", func(m *Manifest) { m.Items[2].Revert = "nowhere" }},
		{"irreversible", func(m *Manifest) { m.Items[2].Irreversible = true }},
		{"not older", func(m *Manifest) { m.Items[3].To = "A05" }},
		{"same version", func(m *Manifest) { m.Items[3].To = "A04" }},
		{"not modem", func(m *Manifest) { m.Items[3].Component = ComponentFile }},
		{"chained", func(m *Manifest) { m.Items[3].Revert = m.Items[2].ID }},
	} {
		m := revertPair(t)
		tc.f(m)
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", tc.name, err)
		}
	}
}

// The revert file is never planned, not even as a hop to the source of a
// delta: for a module at the old version, at the new one, or unknown.
func TestRevertNotPlanned(t *testing.T) {
	m := revertPair(t)
	// The forward item a DFOTA delta from A03: a route from an unknown
	// version could otherwise go through the revert file's A03.
	fw := &m.Items[2]
	fw.Kind, fw.From, fw.SourceDigest, fw.Format = KindDelta, "A03", digest([]byte("A03")), "dfota"
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []string{"A03", "A04", ""} {
		node := NodeInfo{VendorID: m.VendorID, ClassID: m.ClassID, DeviceType: m.Items[2].DeviceTypes[0], Hardware: m.Items[2].Hardware.Min,
			Installed: map[Component]string{ComponentSystem: "1.0", ComponentModem: inst}}
		p, err := m.Select(node)
		if inst == "" {
			// No route to the delta's source: the revert file is not one.
			if !errors.Is(err, ErrGap) {
				t.Errorf("modem unknown: Select = %v, want ErrGap", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("modem %q: Select = %v", inst, err)
		}
		for _, s := range p.Steps {
			if s.Item.ID == "back" {
				t.Errorf("modem %q: the revert file is planned: %+v", inst, p.Steps)
			}
		}
	}
}
