package manifest

import (
	"errors"
	"testing"
)

// Irreversible (key 20) is for modem firmware items only; it survives the
// round trip.
func TestIrreversible(t *testing.T) {
	m, _ := threeItems()
	m.Items[0].Irreversible = true
	if err := m.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate(irreversible system item) = %v, want ErrInvalid", err)
	}
	m.Items[0].Irreversible = false
	m.Items[2].Component, m.Items[2].Kind, m.Items[2].From, m.Items[2].SourceDigest, m.Items[2].Format = ComponentModem, KindFull, "", nil, ""
	m.Items[2].Irreversible = true
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate(irreversible modem item) = %v", err)
	}
	got := roundTrip(t, m)
	if !got.Items[2].Irreversible || got.Items[0].Irreversible {
		t.Errorf("after the round trip: %v, %v", got.Items[0].Irreversible, got.Items[2].Irreversible)
	}
}
