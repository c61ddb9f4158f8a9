package pkgbuild

import (
	"crypto"
	"fmt"
	"io"
	"strings"

	"meterupd/internal/atomicfile"
	"meterupd/manifest"
)

// Group describes a group of nodes a package is tailored for.
type Group struct {
	DeviceType string
	Component  manifest.Component // whose installed version is From
	From       string             // installed version of Component
	Hardware   int64              // hardware revision; < 0: any hardware of the group
	// DeltaFormats are the delta item formats the group's nodes apply
	// (delta.ItemFormats of the node-format versions their update
	// requests advertise); a delta in another format is not picked, so an
	// old node gets a delta in its format or a full image. nil: any.
	DeltaFormats []string
}

// RepackManifest keeps the items group g needs: the cheapest route for
// g's component among the items in a format the group applies, and the
// items of other components that apply to the device type. Key updates
// and targets are kept. m is not changed. A result with neither items nor
// key updates is refused (manifest.ErrNotForDevice); no route is
// manifest.ErrGap.
func RepackManifest(m *manifest.Manifest, g Group) (*manifest.Manifest, error) {
	c := g.Component
	node := manifest.NodeInfo{VendorID: m.VendorID, ClassID: m.ClassID, DeviceType: g.DeviceType,
		Installed: map[manifest.Component]string{c: g.From}, DeltaFormats: g.DeltaFormats}
	probe := *m
	probe.Items = nil
	var orig []int // probe item index → m item index
	for i, it := range m.Items {
		if it.Component != c {
			continue
		}
		if g.Hardware < 0 {
			it.Hardware = manifest.HardwareRange{} // any hardware of the group
		}
		probe.Items = append(probe.Items, it)
		orig = append(orig, i)
	}
	if g.Hardware >= 0 {
		node.Hardware = uint32(g.Hardware)
	}
	keep := map[int]bool{}
	if len(probe.Items) > 0 {
		plan, err := probe.Select(node)
		if err != nil {
			if g.DeltaFormats != nil {
				return nil, fmt.Errorf("%w (the group applies the delta formats %s)", err, strings.Join(g.DeltaFormats, ", "))
			}
			return nil, err
		}
		for _, s := range plan.Steps {
			keep[orig[s.Index]] = true
		}
	}
	for i, it := range m.Items {
		if it.Component == c {
			continue
		}
		if g.Hardware < 0 {
			it.Hardware = manifest.HardwareRange{}
		}
		if it.Applies(node) {
			keep[i] = true
		}
	}
	// A kept modem item's way back (issue 15) travels with it: without
	// its revert file the module would keep the new firmware should a
	// later item fail.
	for i, it := range m.Items {
		if !keep[i] || it.Revert == "" {
			continue
		}
		for j, r := range m.Items {
			if r.ID == it.Revert {
				keep[j] = true
			}
		}
	}
	nm := *m
	nm.Items = nil
	for i, it := range m.Items {
		if keep[i] {
			nm.Items = append(nm.Items, it)
		}
	}
	if len(nm.Items) == 0 && len(nm.Keys) == 0 {
		return nil, fmt.Errorf("%w: nothing for device type %q at %s %s", manifest.ErrNotForDevice, g.DeviceType, c, g.From)
	}
	return &nm, nil
}

// Repack writes to w the package p tailored for group g (RepackManifest),
// with sequence seq when seq is not 0, signed by signer; only the kept
// items' payloads are copied. It returns the new manifest and its signed
// entry. p is consumed.
func (p *Package) Repack(w io.Writer, g Group, seq uint64, signer crypto.Signer) (*manifest.Manifest, []byte, error) {
	nm, err := RepackManifest(p.Manifest, g)
	if err != nil {
		return nil, nil, err
	}
	if seq != 0 {
		nm.Sequence = seq
	}
	env, _, err := Head(nm, signer)
	if err != nil {
		return nil, nil, err
	}
	keep := map[string]bool{}
	for _, it := range nm.Items {
		keep[it.Payload] = true
	}
	if err := p.writeWith(w, env, keep); err != nil {
		return nil, nil, err
	}
	return nm, env, nil
}

// Repacked is the result of RepackFile.
type Repacked struct {
	Input    *manifest.Manifest // the input package's manifest
	Manifest *manifest.Manifest // the tailored manifest
	Envelope []byte             // its signed manifest entry
}

// RepackFile repacks the package file in into out (durably; nothing is
// left at out on error). With a non-nil trust keyring the input is first
// verified against it, payloads included.
func RepackFile(in, out string, g Group, seq uint64, signer crypto.Signer, trust *manifest.Keyring) (*Repacked, error) {
	if trust != nil {
		if _, _, err := VerifyFile(in, trust, manifest.Options{}); err != nil {
			return nil, err
		}
	}
	p, err := Open(in)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	r := &Repacked{Input: p.Manifest}
	err = atomicfile.Write(out, 0o644, func(w io.Writer) error {
		var err error
		r.Manifest, r.Envelope, err = p.Repack(w, g, seq, signer)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
