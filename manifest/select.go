package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// NodeInfo is what the node knows about itself for item selection.
type NodeInfo struct {
	VendorID   uint32
	ClassID    uint32
	DeviceType string
	Hardware   uint32 // hardware revision
	Variant    string // e.g. memory variant; matched against Item.Hardware.Variants
	// Installed maps each component to its installed version; a missing
	// component is not installed.
	Installed map[Component]string
	// DeltaFormats are the formats (Item.Format) of the delta items the
	// node applies; a delta item in another format does not apply to it.
	// nil: every format (the node's plan is not narrowed). A head-end
	// tailoring a package for a node fills it from the node's update
	// request, as the node does from its own build, so both pick the
	// same route (delta.ItemFormats).
	DeltaFormats []string
}

// Step is one hop of the install plan.
type Step struct {
	Index int  // the item's index in Manifest.Items (= container order)
	Item  Item // the item
}

// Plan is the ordered list of items to install on one node: per component
// the cheapest route from the installed version to the target, components
// ordered so that prerequisites come first.
type Plan struct {
	Steps []Step
	// Targets is the version each planned component ends at.
	Targets map[Component]string
}

// Streamable reports whether the steps appear in container order, so the
// node can install each payload while it streams in without storing it.
func (p Plan) Streamable() bool {
	for i := 1; i < len(p.Steps); i++ {
		if p.Steps[i].Index <= p.Steps[i-1].Index {
			return false
		}
	}
	return true
}

// Applies reports whether the item is meant for the node's device type,
// hardware revision and variant, and, for a delta, whether the node
// applies its format (NodeInfo.DeltaFormats; an item naming no format is
// not narrowed).
func (it *Item) Applies(node NodeInfo) bool {
	if len(it.DeviceTypes) > 0 && !slices.Contains(it.DeviceTypes, node.DeviceType) {
		return false
	}
	h := it.Hardware
	if node.Hardware < h.Min || h.Max != 0 && node.Hardware > h.Max {
		return false
	}
	if len(h.Variants) > 0 && !slices.Contains(h.Variants, node.Variant) {
		return false
	}
	if it.Kind == KindDelta && node.DeltaFormats != nil && it.Format != "" &&
		!slices.ContainsFunc(node.DeltaFormats, func(f string) bool { return strings.EqualFold(f, it.Format) }) {
		return false
	}
	return true
}

// Select builds the node's install plan. For each component the node's
// items touch, the target is the manifest's Target for it or else the
// highest version an applicable item produces; the route from the
// installed version to the target is version by version over delta items
// (From must equal the current version) and full images (from anything),
// skipping versions already passed, and is the cheapest route: fewest
// payload bytes, then fewest hops. It refuses: a manifest for another
// vendor or class, or with no item for this node (ErrNotForDevice); a
// target older than the installed version without the signed Downgrade
// flag (ErrDowngrade); no route (ErrGap); a prerequisite neither installed
// nor reached earlier in the plan (ErrPrerequisite).
//
// A component already at its target has no steps: a package the node has
// fully applied plans nothing.
func (m *Manifest) Select(node NodeInfo) (Plan, error) {
	if m.VendorID != 0 && m.VendorID != node.VendorID || m.ClassID != 0 && m.ClassID != node.ClassID {
		return Plan{}, fmt.Errorf("%w: package for vendor %d class %d", ErrNotForDevice, m.VendorID, m.ClassID)
	}
	byComp := map[Component][]int{}
	var comps []Component
	reverts := map[string]bool{} // issue 15: a revert file is never a step
	for i := range m.Items {
		if r := m.Items[i].Revert; r != "" {
			reverts[r] = true
		}
	}
	for i := range m.Items {
		it := &m.Items[i]
		if !it.Applies(node) || reverts[it.ID] {
			continue
		}
		if _, ok := byComp[it.Component]; !ok {
			comps = append(comps, it.Component)
		}
		byComp[it.Component] = append(byComp[it.Component], i)
	}
	if len(comps) == 0 {
		if len(m.Items) == 0 {
			return Plan{Targets: map[Component]string{}}, nil // key updates only
		}
		return Plan{}, fmt.Errorf("%w: device type %q hardware %d variant %q", ErrNotForDevice, node.DeviceType, node.Hardware, node.Variant)
	}
	chains := map[Component][]Step{}
	targets := map[Component]string{}
	for _, c := range comps {
		installed := node.Installed[c]
		target, explicit := m.target(c)
		if !explicit {
			for _, i := range byComp[c] {
				if target == "" || CompareVersions(m.Items[i].To, target) > 0 {
					target = m.Items[i].To
				}
			}
		}
		targets[c] = target
		if installed == target {
			continue
		}
		if installed != "" && CompareVersions(target, installed) <= 0 {
			if !m.Downgrade {
				if explicit {
					return Plan{}, fmt.Errorf("%w: %s %s → %s", ErrDowngrade, c, installed, target)
				}
				targets[c] = installed // every item is for a version already passed
				continue
			}
		}
		chain, err := m.route(byComp[c], installed, target)
		if err != nil {
			return Plan{}, fmt.Errorf("%w: %s %q → %q", err, c, installed, target)
		}
		for i := range chain {
			chain[i].Item.Prereqs = m.resolvePrereqs(chain[i].Item.Prereqs)
		}
		chains[c] = chain
	}
	order, err := m.orderComponents(comps, chains, node)
	if err != nil {
		return Plan{}, err
	}
	var plan Plan
	plan.Targets = targets
	for _, c := range order {
		plan.Steps = append(plan.Steps, chains[c]...)
	}
	return plan, nil
}

func (m *Manifest) target(c Component) (string, bool) {
	for _, t := range m.Targets {
		if t.Component == c {
			return t.Version, true
		}
	}
	return "", false
}

// route finds the cheapest path from installed to target over the items
// idx (Dijkstra on (bytes, hops); at most MaxItems+1 vertices).
func (m *Manifest) route(idx []int, installed, target string) ([]Step, error) {
	type cost struct{ bytes, hops uint64 }
	less := func(a, b cost) bool { return a.bytes < b.bytes || a.bytes == b.bytes && a.hops < b.hops }
	type label struct {
		c    cost
		via  int    // item index that reached this version, -1 at start
		prev string // version before via
		done bool
	}
	dist := map[string]*label{installed: {via: -1}}
	for {
		// Pick the cheapest unfinished version; ties by version for determinism.
		var cur string
		var best *label
		for v, l := range dist {
			if !l.done && (best == nil || less(l.c, best.c) || l.c == best.c && v < cur) {
				cur, best = v, l
			}
		}
		if best == nil {
			return nil, ErrGap
		}
		if cur == target {
			break
		}
		best.done = true
		for _, i := range idx {
			it := &m.Items[i]
			if it.Kind == KindDelta && it.From != cur {
				continue
			}
			if it.To == cur {
				continue
			}
			// Without the downgrade flag every hop moves forward: versions
			// already passed are skipped.
			if !m.Downgrade && cur != "" && CompareVersions(it.To, cur) <= 0 {
				continue
			}
			c := cost{best.c.bytes + it.Size, best.c.hops + 1}
			l, ok := dist[it.To]
			if !ok {
				dist[it.To] = &label{c: c, via: i, prev: cur}
				continue
			}
			if !l.done && (less(c, l.c) || c == l.c && m.Items[i].Step < m.Items[l.via].Step) {
				l.c, l.via, l.prev = c, i, cur
			}
		}
	}
	var rev []Step
	for v := target; dist[v].via >= 0; v = dist[v].prev {
		i := dist[v].via
		rev = append(rev, Step{Index: i, Item: m.Items[i]})
		if len(rev) > len(m.Items) {
			return nil, fmt.Errorf("%w: route loops", ErrInvalid) // cannot happen: Dijkstra labels form a tree
		}
	}
	slices.Reverse(rev)
	return rev, nil
}

// orderComponents orders the planned components so that a component whose
// steps need another component's version comes after it, and checks every
// prerequisite of every step.
func (m *Manifest) orderComponents(comps []Component, chains map[Component][]Step, node NodeInfo) ([]Component, error) {
	reached := func(c Component, v string) bool { // installed, or reached by the chain of c
		if iv := node.Installed[c]; iv != "" && CompareVersions(iv, v) >= 0 {
			return true
		}
		for _, s := range chains[c] {
			if CompareVersions(s.Item.To, v) >= 0 {
				return true
			}
		}
		return false
	}
	after := map[Component]map[Component]bool{} // after[c][d]: c's chain needs d's chain first
	for _, c := range comps {
		ver := node.Installed[c]
		for _, s := range chains[c] {
			for _, p := range s.Item.Prereqs {
				if p.Component == c {
					if ver == "" || CompareVersions(ver, p.Version) < 0 {
						return nil, fmt.Errorf("%w: item %s needs %s %s", ErrPrerequisite, s.Item.ID, p.Component, p.Version)
					}
					continue
				}
				if iv := node.Installed[p.Component]; iv != "" && CompareVersions(iv, p.Version) >= 0 {
					continue
				}
				if !reached(p.Component, p.Version) {
					return nil, fmt.Errorf("%w: item %s needs %s %s", ErrPrerequisite, s.Item.ID, p.Component, p.Version)
				}
				if after[c] == nil {
					after[c] = map[Component]bool{}
				}
				after[c][p.Component] = true
			}
			ver = s.Item.To
		}
	}
	// Topological sort of at most three components, keeping manifest order.
	var order []Component
	placed := map[Component]bool{}
	for len(order) < len(comps) {
		progress := false
		for _, c := range comps {
			if placed[c] {
				continue
			}
			ready := true
			for d := range after[c] {
				if !placed[d] {
					ready = false
				}
			}
			if ready {
				order = append(order, c)
				placed[c] = true
				progress = true
			}
		}
		if !progress {
			return nil, fmt.Errorf("%w: components need each other", ErrPrerequisite)
		}
	}
	return order, nil
}

// resolvePrereqs returns ps with item references replaced by the
// referenced item's component and To version (a new slice: the manifest
// is not changed).
func (m *Manifest) resolvePrereqs(ps []Prereq) []Prereq {
	if len(ps) == 0 {
		return ps
	}
	out := make([]Prereq, len(ps))
	for i, p := range ps {
		if ref, ok := m.Item(p.Item); ok && p.Item != "" {
			p.Component, p.Version = ref.Component, ref.To
		}
		out[i] = p
	}
	return out
}
