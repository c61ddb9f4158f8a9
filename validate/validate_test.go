package validate

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/boards/hw"
	"meterupd/manifest"
)

func sum(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func goodFacts() Facts {
	return Facts{
		DeviceType: "em300", Hardware: 3, Power: hw.Mains, FreeBytes: 8 << 20,
		Installed: map[manifest.Component]string{manifest.ComponentSystem: "1.0", manifest.ComponentModem: "4.2"},
		Present:   []string{"display"},
		Functions: []string{"tou-tariffs"},
		Digests:   map[manifest.Component][]byte{manifest.ComponentSystem: sum("v1")},
	}
}

func item(checks ...manifest.Check) manifest.Item {
	return manifest.Item{
		ID: "sys-1-2", Component: manifest.ComponentSystem, Kind: manifest.KindDelta, From: "1.0", To: "2.0",
		DeviceTypes: []string{"em300"}, Hardware: manifest.HardwareRange{Min: 2, Max: 5},
		Prereqs:      []manifest.Prereq{{Component: manifest.ComponentModem, Version: "4.0"}},
		SourceDigest: sum("v1"), TargetDigest: sum("v2"), TargetSize: 4 << 20, Checks: checks,
	}
}

func TestEachCheckPassesAndFails(t *testing.T) {
	for _, tc := range []struct {
		check  manifest.Check
		break_ func(f *Facts)
	}{
		{manifest.Check{Kind: DeviceType}, func(f *Facts) { f.DeviceType = "wm100" }},
		{manifest.Check{Kind: DeviceType, Arg: "em300"}, func(f *Facts) { f.DeviceType = "em301" }},
		{manifest.Check{Kind: Hardware}, func(f *Facts) { f.Hardware = 9 }},
		{manifest.Check{Kind: Prerequisite}, func(f *Facts) { f.Installed[manifest.ComponentModem] = "3.9" }},
		{manifest.Check{Kind: Prerequisite}, func(f *Facts) { delete(f.Installed, manifest.ComponentModem) }},
		{manifest.Check{Kind: SourceVersion}, func(f *Facts) { f.Installed[manifest.ComponentSystem] = "1.1" }},
		{manifest.Check{Kind: Power}, func(f *Facts) { f.Power = hw.Battery }},
		{manifest.Check{Kind: Power}, func(f *Facts) { f.Power = "" }},
		{manifest.Check{Kind: FreeSpace}, func(f *Facts) { f.FreeBytes = 4<<20 - 1 }},
		{manifest.Check{Kind: FreeSpace, Value: 6 << 20}, func(f *Facts) { f.FreeBytes = 5 << 20 }},
		{manifest.Check{Kind: Component, Arg: "modem"}, func(f *Facts) { delete(f.Installed, manifest.ComponentModem) }},
		{manifest.Check{Kind: Component, Arg: "display"}, func(f *Facts) { f.Present = nil }},
		{manifest.Check{Kind: Function, Arg: "tou-tariffs"}, func(f *Facts) { f.Functions = []string{"other"} }},
		{manifest.Check{Kind: SourceDigest}, func(f *Facts) { f.Digests[manifest.ComponentSystem] = sum("v1 tampered") }},
		{manifest.Check{Kind: SourceDigest}, func(f *Facts) { f.Digests = nil }},
	} {
		t.Run(tc.check.Kind+"/"+tc.check.Arg, func(t *testing.T) {
			it := item(tc.check)
			if r := Item(it, goodFacts()); r.Level != Continue || r.Failed != 0 || !r.Outcomes[0].Passed {
				t.Errorf("Item(good facts) = %+v, want passed, level 1", r)
			}
			f := goodFacts()
			tc.break_(&f)
			r := Item(it, f)
			if r.Level != Stop || r.Failed != 1 || r.Outcomes[0].Passed || r.Outcomes[0].Detail == "" {
				t.Errorf("Item(broken facts) = %+v, want failed with a detail, level 3", r)
			}
		})
	}
}

func TestUnknownCheckFails(t *testing.T) {
	r := Item(item(manifest.Check{Kind: "moon-phase"}), goodFacts())
	if r.Level != Stop || r.Outcomes[0].Passed {
		t.Errorf("Item(unknown check) = %+v, want failed, level 3", r)
	}
}

func TestLevels(t *testing.T) {
	checks := []manifest.Check{{Kind: Power}, {Kind: FreeSpace}, {Kind: Function, Arg: "x", Weight: 3}}
	for _, tc := range []struct {
		name  string
		th    manifest.Thresholds
		power hw.PowerSource
		free  uint64
		want  Level
		fail  uint32
	}{
		{"weighted failure", manifest.Thresholds{}, hw.Mains, 8 << 20, Stop, 3}, // function x is never enabled: weight 3
		{"default stop on any failure", manifest.Thresholds{}, hw.Mains, 8 << 20, Stop, 3},
		{"below skip: continue", manifest.Thresholds{Skip: 4, Stop: 6}, hw.Mains, 8 << 20, Continue, 3},
		{"skip reached", manifest.Thresholds{Skip: 4, Stop: 6}, hw.Battery, 8 << 20, Skip, 4},
		{"stop reached", manifest.Thresholds{Skip: 4, Stop: 5}, hw.Battery, 0, Stop, 5},
		{"no skip level", manifest.Thresholds{Stop: 10}, hw.Battery, 0, Continue, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := item(checks...)
			it.Thresholds = tc.th
			f := goodFacts()
			f.Power, f.FreeBytes = tc.power, tc.free
			r := Item(it, f)
			if r.Level != tc.want || r.Failed != tc.fail || len(r.Outcomes) != 3 {
				t.Errorf("Item = level %v failed %d (%d outcomes), want level %v failed %d", r.Level, r.Failed, len(r.Outcomes), tc.want, tc.fail)
			}
		})
	}
}

func chainPlan(th manifest.Thresholds) manifest.Plan {
	checks := []manifest.Check{{Kind: SourceDigest}, {Kind: SourceVersion}, {Kind: Function, Arg: "modem-v5"}}
	s12 := item(checks...)
	s12.Thresholds = th
	s23 := s12
	s23.ID, s23.From, s23.To, s23.SourceDigest, s23.TargetDigest = "sys-2-3", "2.0", "3.0", sum("v2"), sum("v3")
	mod := manifest.Item{ID: "modem-5", Component: manifest.ComponentModem, Kind: manifest.KindFull, To: "5.0",
		Checks: []manifest.Check{{Kind: Power}}, TargetDigest: sum("m5")}
	return manifest.Plan{Steps: []manifest.Step{{Index: 0, Item: s12}, {Index: 1, Item: s23}, {Index: 2, Item: mod}}}
}

func TestPlanChainAdvancesFacts(t *testing.T) {
	f := goodFacts()
	f.Functions = append(f.Functions, "modem-v5")
	rep, err := Plan(chainPlan(manifest.Thresholds{}), f)
	if err != nil {
		t.Fatalf("Plan = %v", err)
	}
	var got []string
	for _, s := range rep.Install {
		got = append(got, s.Item.ID)
	}
	if diff := cmp.Diff([]string{"sys-1-2", "sys-2-3", "modem-5"}, got); diff != "" {
		t.Errorf("Install (-want +got):\n%s", diff)
	}
	if f.Installed[manifest.ComponentSystem] != "1.0" {
		t.Errorf("Plan modified the caller's facts")
	}
}

func TestPlanSkipBreaksChainOnly(t *testing.T) {
	rep, err := Plan(chainPlan(manifest.Thresholds{Skip: 1, Stop: 2}), goodFacts()) // modem-v5 not enabled
	if err != nil {
		t.Fatalf("Plan = %v", err)
	}
	if len(rep.Install) != 1 || rep.Install[0].Item.ID != "modem-5" {
		t.Errorf("Install = %v, want only modem-5", rep.Install)
	}
	want := []Level{Skip, Skip, Continue}
	for i, r := range rep.Results {
		if r.Level != want[i] {
			t.Errorf("Results[%d] (%s) level %v, want %v", i, r.Item, r.Level, want[i])
		}
	}
	if rep.Level != Skip {
		t.Errorf("Report level %v, want skip", rep.Level)
	}
}

func TestPlanStops(t *testing.T) {
	f := goodFacts()
	f.Digests[manifest.ComponentSystem] = sum("something else") // source-digest mismatch
	rep, err := Plan(chainPlan(manifest.Thresholds{}), f)
	if !errors.Is(err, ErrStop) || rep.Install != nil || rep.Level != Stop || len(rep.Results) != 1 {
		t.Errorf("Plan = %+v, %v; want ErrStop, nothing to install, one result", rep, err)
	}
}

// TestSelectThenValidate is the agent's sequence on one set of facts:
// select the route, then validate it.
func TestSelectThenValidate(t *testing.T) {
	v1, v2, v3 := sum("v1"), sum("v2"), sum("v3")
	checks := []manifest.Check{{Kind: SourceDigest}, {Kind: Power}}
	m := &manifest.Manifest{Schema: manifest.SchemaVersion, Sequence: 2, Items: []manifest.Item{
		{ID: "a", Component: manifest.ComponentSystem, Kind: manifest.KindDelta, From: "1.0", To: "2.0", Size: 10,
			SourceDigest: v1, TargetDigest: v2, Checks: checks, DeviceTypes: []string{"em300"}},
		{ID: "b", Component: manifest.ComponentSystem, Kind: manifest.KindDelta, From: "2.0", To: "3.0", Size: 10,
			SourceDigest: v2, TargetDigest: v3, Checks: checks, DeviceTypes: []string{"em300"}},
	}}
	f := goodFacts()
	plan, err := m.Select(f.Node())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Plan(plan, f)
	if err != nil || len(rep.Install) != 2 {
		t.Fatalf("Plan = %d to install, %v; want 2, nil", len(rep.Install), err)
	}
	f.Power = hw.Battery
	if _, err := Plan(plan, f); !errors.Is(err, ErrStop) {
		t.Errorf("Plan on battery = %v, want ErrStop", err)
	}
}
