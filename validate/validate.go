package validate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"meterupd/boards/hw"
	"meterupd/manifest"
)

// ErrStop is returned by Plan when an item reaches compliance level 3.
var ErrStop = errors.New("validate: compliance level 3: update stopped")

// Check kinds a manifest may name.
const (
	DeviceType    = "device-type"
	Hardware      = "hardware"
	Prerequisite  = "prerequisite"
	SourceVersion = "source-version"
	Power         = "power"
	FreeSpace     = "free-space"
	Component     = "component"
	Function      = "function"
	SourceDigest  = "source-digest"
)

// Facts is what the node knows about itself when it validates.
type Facts struct {
	VendorID   uint32                        `json:"vendor_id,omitempty"`
	ClassID    uint32                        `json:"class_id,omitempty"`
	DeviceType string                        `json:"device_type"`
	Hardware   uint32                        `json:"hardware_revision"`
	Variant    string                        `json:"variant,omitempty"`
	Power      hw.PowerSource                `json:"power"`
	FreeBytes  uint64                        `json:"free_bytes"` // room for the item's result (idle slot size)
	Installed  map[manifest.Component]string `json:"installed,omitempty"`
	Present    []string                      `json:"present,omitempty"`   // modules present besides installed components
	Functions  []string                      `json:"functions,omitempty"` // enabled functionalities
	Digests    map[manifest.Component][]byte `json:"digests,omitempty"`   // SHA-256 of each component's current image
	// DeltaFormats are the delta item formats the node applies
	// (manifest.NodeInfo.DeltaFormats); nil: any.
	DeltaFormats []string `json:"delta_formats,omitempty"`
}

// Node returns the facts item selection needs (manifest.Select).
func (f Facts) Node() manifest.NodeInfo {
	return manifest.NodeInfo{VendorID: f.VendorID, ClassID: f.ClassID, DeviceType: f.DeviceType,
		Hardware: f.Hardware, Variant: f.Variant, Installed: f.Installed, DeltaFormats: f.DeltaFormats}
}

// Level is a compliance level.
type Level int

const (
	Continue Level = 1 // level 1: install the item
	Skip     Level = 2 // level 2: skip the item, go on with the others
	Stop     Level = 3 // level 3: stop the whole update
)

func (l Level) String() string {
	switch l {
	case Continue:
		return "continue"
	case Skip:
		return "skip"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Outcome is the result of one check.
type Outcome struct {
	Check  string `json:"check"`
	Arg    string `json:"arg,omitempty"`
	Passed bool   `json:"passed"`
	Weight uint32 `json:"weight"`
	Detail string `json:"detail,omitempty"`
}

// Result is the validation of one item: every check's outcome, the failed
// weight and the level it gives.
type Result struct {
	Item     string    `json:"item"`
	Outcomes []Outcome `json:"outcomes"`
	Failed   uint32    `json:"failed"`
	Level    Level     `json:"level"`
}

// Item runs the item's checks against f.
func Item(it manifest.Item, f Facts) Result {
	r := Result{Item: it.ID, Outcomes: make([]Outcome, 0, len(it.Checks))}
	for _, c := range it.Checks {
		w := c.Weight
		if w == 0 {
			w = 1
		}
		ok, detail := run(c, it, f)
		r.Outcomes = append(r.Outcomes, Outcome{Check: c.Kind, Arg: c.Arg, Passed: ok, Weight: w, Detail: detail})
		if !ok {
			r.Failed = satAdd(r.Failed, w)
		}
	}
	r.Level = level(r.Failed, it.Thresholds)
	return r
}

func satAdd(a, b uint32) uint32 {
	if a+b < a {
		return ^uint32(0)
	}
	return a + b
}

func level(failed uint32, t manifest.Thresholds) Level {
	if failed == 0 {
		return Continue
	}
	stop := t.Stop
	if stop == 0 {
		stop = 1
	}
	if failed >= stop {
		return Stop
	}
	if t.Skip > 0 && failed >= t.Skip {
		return Skip
	}
	return Continue
}

// run evaluates one check; detail says why it failed (or what it saw).
func run(c manifest.Check, it manifest.Item, f Facts) (bool, string) {
	switch c.Kind {
	case DeviceType:
		if c.Arg != "" {
			return f.DeviceType == c.Arg, fmt.Sprintf("device type %q", f.DeviceType)
		}
		if len(it.DeviceTypes) == 0 {
			return true, ""
		}
		return slices.Contains(it.DeviceTypes, f.DeviceType), fmt.Sprintf("device type %q", f.DeviceType)
	case Hardware:
		hwOnly := it
		hwOnly.DeviceTypes = nil // the device-type check covers that
		ok := hwOnly.Applies(manifest.NodeInfo{Hardware: f.Hardware, Variant: f.Variant})
		return ok, fmt.Sprintf("hardware %d variant %q", f.Hardware, f.Variant)
	case Prerequisite:
		for _, p := range it.Prereqs {
			v := f.Installed[p.Component]
			if v == "" || manifest.CompareVersions(v, p.Version) < 0 {
				return false, fmt.Sprintf("%s %q installed, needs %q", p.Component, v, p.Version)
			}
		}
		return true, ""
	case SourceVersion:
		if it.Kind != manifest.KindDelta {
			return true, "full image"
		}
		v := f.Installed[it.Component]
		return v == it.From, fmt.Sprintf("%s %q installed, delta from %q", it.Component, v, it.From)
	case Power:
		return f.Power == hw.Mains, fmt.Sprintf("power source %q", f.Power)
	case FreeSpace:
		need := c.Value
		if need == 0 {
			need = it.TargetSize
		}
		return f.FreeBytes >= need, fmt.Sprintf("%d bytes free, %d needed", f.FreeBytes, need)
	case Component:
		name := c.Arg
		if name == "" {
			name = it.Component.String()
		}
		if comp, err := manifest.ParseComponent(name); err == nil && f.Installed[comp] != "" {
			return true, ""
		}
		return slices.Contains(f.Present, name), fmt.Sprintf("component %q", name)
	case Function:
		return slices.Contains(f.Functions, c.Arg), fmt.Sprintf("functionality %q", c.Arg)
	case SourceDigest:
		if it.Kind != manifest.KindDelta {
			return true, "full image"
		}
		d := f.Digests[it.Component]
		if len(d) == 0 {
			return false, "current image digest unknown"
		}
		if !bytes.Equal(d, it.SourceDigest) {
			return false, fmt.Sprintf("current image %x, delta expects %x", d, it.SourceDigest)
		}
		return true, ""
	}
	return false, fmt.Sprintf("unknown check %q", c.Kind)
}

// Report is the validation of a whole plan: one Result per planned step,
// and the steps to install.
type Report struct {
	Results []Result        `json:"results"`
	Install []manifest.Step `json:"-"`
	Level   Level           `json:"level"` // the highest level seen
}

// Plan validates the plan's steps in order. A step that passes moves the
// simulated facts on (its component is then at the step's To version with
// the step's TargetDigest), so a chain v1→v2→v3 is validated as it will be
// installed. A level-2 step is skipped together with the later steps of its
// component. A level-3 step stops: Plan returns the report so far with
// Install nil and an error wrapping ErrStop. f is not modified.
func Plan(plan manifest.Plan, f Facts) (Report, error) {
	sim := f
	sim.Installed = make(map[manifest.Component]string, len(f.Installed))
	for k, v := range f.Installed {
		sim.Installed[k] = v
	}
	sim.Digests = make(map[manifest.Component][]byte, len(f.Digests))
	for k, v := range f.Digests {
		sim.Digests[k] = v
	}
	rep := Report{Level: Continue}
	broken := map[manifest.Component]string{} // component → id of the skipped step
	for _, s := range plan.Steps {
		it := s.Item
		if id, ok := broken[it.Component]; ok {
			rep.Results = append(rep.Results, Result{Item: it.ID, Level: Skip,
				Outcomes: []Outcome{{Check: "chain", Passed: false, Weight: 0, Detail: "earlier step " + id + " skipped"}}})
			rep.Level = max(rep.Level, Skip)
			continue
		}
		r := Item(it, sim)
		rep.Results = append(rep.Results, r)
		rep.Level = max(rep.Level, r.Level)
		switch r.Level {
		case Stop:
			rep.Install = nil
			return rep, fmt.Errorf("%w: item %s failed %d", ErrStop, it.ID, r.Failed)
		case Skip:
			broken[it.Component] = it.ID
			continue
		}
		rep.Install = append(rep.Install, s)
		sim.Installed[it.Component] = it.To
		sim.Digests[it.Component] = it.TargetDigest
	}
	return rep, nil
}
