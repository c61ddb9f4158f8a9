package pkgbuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"meterupd/delta"
	"meterupd/manifest"
)

// Spec is the build input: the manifest's header fields, defaults for the
// items, and the items with where their bytes come from. Relative paths
// are relative to the directory given to Build (the spec file's).
type Spec struct {
	Sequence  uint64            `json:"sequence"`
	Downgrade bool              `json:"downgrade"`
	Expires   string            `json:"expires"` // RFC 3339, optional
	VendorID  uint32            `json:"vendor_id"`
	ClassID   uint32            `json:"class_id"`
	Targets   []manifest.Target `json:"targets"`
	AddKeys   []string          `json:"add_keys"`    // public key PEM files to add to the nodes' keyrings
	RetireKey []string          `json:"retire_keys"` // public key PEM files or hex key ids to retire
	Defaults  SpecItem          `json:"defaults"`
	Items     []SpecItem        `json:"items"`
	// BlockSize is the size of the payloads' digested blocks (manifest
	// schema 2: a node checks every block as it arrives). Absent means
	// manifest.DefaultBlockSize; 0 builds a schema-1 package, without
	// block digests, for nodes that read only schema 1 (their update
	// request names no schema 2).
	BlockSize *uint32 `json:"block_size"`
}

// SpecItem is one item of a Spec (or the defaults of all items).
type SpecItem struct {
	ID          string                  `json:"id"`
	Component   *manifest.Component     `json:"component"`
	Kind        *manifest.Kind          `json:"kind"`
	Format      string                  `json:"format"` // delta format: node (default), node2, node1, bsdiff40, bsdiff43
	From        string                  `json:"from"`
	To          string                  `json:"to"`
	DeviceTypes []string                `json:"device_types"`
	Hardware    *manifest.HardwareRange `json:"hardware"`
	Prereqs     []manifest.Prereq       `json:"prereqs"`
	Step        uint32                  `json:"step"`
	Payload     string                  `json:"payload"`      // name in the package (default: id + .delta or .img)
	PayloadFile string                  `json:"payload_file"` // precomputed payload
	Old         string                  `json:"old"`          // source image (delta)
	New         string                  `json:"new"`          // target image
	SourceHash  string                  `json:"source_sha256"`
	TargetHash  string                  `json:"target_sha256"`
	TargetSize  uint64                  `json:"target_size"`
	Checks      []manifest.Check        `json:"checks"`
	Thresholds  *manifest.Thresholds    `json:"thresholds"`
	// Revert (modem items): the id of the item carrying the maker's file
	// back to the module's previous version (manifest.Item.Revert).
	Revert string `json:"revert"`
}

// ReadSpec reads a JSON spec; unknown fields are refused, so a typo does
// not silently build a different package.
func ReadSpec(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("pkgbuild: spec %s: %w", path, err)
	}
	return &s, nil
}

func fileDigest(path string) ([]byte, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, 0, err
	}
	return h.Sum(nil), uint64(n), nil
}

// builtItem is an item and the file or bytes its payload comes from.
type builtItem struct {
	item manifest.Item
	file string
	data []byte // computed delta, when file is empty
}

func (b builtItem) open() (io.ReadCloser, error) {
	if b.file == "" {
		return io.NopCloser(bytes.NewReader(b.data)), nil
	}
	return os.Open(b.file)
}

// Built is a manifest built from a Spec and the sources of its payloads,
// ready to be written as a package.
type Built struct {
	Manifest *manifest.Manifest
	items    []builtItem
}

// Build turns a spec into a manifest, computing deltas and digests. dir
// is the directory relative paths of the spec are resolved against.
func Build(s *Spec, dir string) (*Built, error) {
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	m := &manifest.Manifest{
		Schema: manifest.SchemaVersion, Sequence: s.Sequence, Downgrade: s.Downgrade,
		VendorID: s.VendorID, ClassID: s.ClassID, Targets: s.Targets,
	}
	if s.Expires != "" {
		t, err := time.Parse(time.RFC3339, s.Expires)
		if err != nil {
			return nil, fmt.Errorf("pkgbuild: spec: expires: %w", err)
		}
		m.Expires = t.Unix()
	}
	for _, p := range s.AddKeys {
		b, err := os.ReadFile(rel(p))
		if err != nil {
			return nil, err
		}
		pub, err := manifest.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("pkgbuild: spec: add_keys %s: %w", p, err)
		}
		u, err := manifest.NewKeyUpdate(pub)
		if err != nil {
			return nil, err
		}
		m.Keys = append(m.Keys, u)
	}
	for _, r := range s.RetireKey {
		kid, err := hex.DecodeString(r)
		if err != nil || len(kid) != manifest.KeyIDSize {
			b, ferr := os.ReadFile(rel(r))
			if ferr != nil {
				return nil, fmt.Errorf("pkgbuild: spec: retire_keys %q: neither a key id nor a readable file", r)
			}
			pub, perr := manifest.ParsePublicKeyPEM(b)
			if perr != nil {
				return nil, fmt.Errorf("pkgbuild: spec: retire_keys %s: %w", r, perr)
			}
			kid, _ = manifest.KeyID(pub)
		}
		m.Keys = append(m.Keys, manifest.KeyUpdate{Op: manifest.KeyRetire, KID: kid})
	}
	out := &Built{Manifest: m}
	for i, si := range s.Items {
		b, err := buildItem(s.Defaults, si, rel, fmt.Sprintf("pkgbuild: spec: items[%d] (%s)", i, si.ID))
		if err != nil {
			return nil, err
		}
		m.Items = append(m.Items, b.item)
		out.items = append(out.items, b)
	}
	bs := uint32(manifest.DefaultBlockSize)
	if s.BlockSize != nil {
		bs = *s.BlockSize
	}
	if bs != 0 {
		if err := out.setBlocks(bs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setBlocks gives every item the block digests of its payload.
func (b *Built) setBlocks(bs uint32) error {
	for i, bi := range b.items {
		r, err := bi.open()
		if err != nil {
			return err
		}
		_, root, err := manifest.BlockList(r, int64(bi.item.Size), bs)
		r.Close()
		if err != nil {
			return fmt.Errorf("pkgbuild: block digests of %s: %w", bi.item.Payload, err)
		}
		b.Manifest.Items[i].BlockSize, b.Manifest.Items[i].BlockRoot = bs, root
		b.items[i].item = b.Manifest.Items[i]
	}
	b.Manifest.Schema = manifest.SchemaBlocks
	return nil
}

func buildItem(d, si SpecItem, rel func(string) string, where string) (builtItem, error) {
	it := manifest.Item{ID: si.ID, Format: si.Format, From: si.From, To: si.To, Step: si.Step, Payload: si.Payload, TargetSize: si.TargetSize, Revert: si.Revert}
	it.DeviceTypes = si.DeviceTypes
	if it.DeviceTypes == nil {
		it.DeviceTypes = d.DeviceTypes
	}
	if c := firstNonNil(si.Component, d.Component); c != nil {
		it.Component = *c
	}
	if k := firstNonNil(si.Kind, d.Kind); k != nil {
		it.Kind = *k
	} else if si.From != "" {
		it.Kind = manifest.KindDelta
	}
	if h := firstNonNil(si.Hardware, d.Hardware); h != nil {
		it.Hardware = *h
	}
	if t := firstNonNil(si.Thresholds, d.Thresholds); t != nil {
		it.Thresholds = *t
	}
	it.Prereqs = si.Prereqs
	if it.Prereqs == nil {
		it.Prereqs = d.Prereqs
	}
	it.Checks = si.Checks
	if it.Checks == nil {
		it.Checks = d.Checks
	}
	if it.Format == "" && it.Kind == manifest.KindDelta {
		it.Format = d.Format
		if it.Format == "" {
			it.Format = delta.FormatNode.String()
		}
	}
	if it.Kind == manifest.KindDelta {
		// A node selects deltas by this name (manifest.NodeInfo.DeltaFormats):
		// only names it knows.
		if _, err := delta.ParseFormat(it.Format); err != nil {
			return builtItem{}, fmt.Errorf("%s: %w", where, err)
		}
	}
	b := builtItem{file: rel(si.PayloadFile)}
	// Target image: digest and size.
	switch {
	case si.New != "":
		dg, n, err := fileDigest(rel(si.New))
		if err != nil {
			return b, fmt.Errorf("%s: new: %w", where, err)
		}
		it.TargetDigest, it.TargetSize = dg, n
	case si.TargetHash != "":
		dg, err := hex.DecodeString(si.TargetHash)
		if err != nil {
			return b, fmt.Errorf("%s: target_sha256: %w", where, err)
		}
		it.TargetDigest = dg
	default:
		return b, fmt.Errorf("%s: needs new or target_sha256", where)
	}
	if it.Kind == manifest.KindDelta {
		switch {
		case si.Old != "":
			dg, _, err := fileDigest(rel(si.Old))
			if err != nil {
				return b, fmt.Errorf("%s: old: %w", where, err)
			}
			it.SourceDigest = dg
		case si.SourceHash != "":
			dg, err := hex.DecodeString(si.SourceHash)
			if err != nil {
				return b, fmt.Errorf("%s: source_sha256: %w", where, err)
			}
			it.SourceDigest = dg
		default:
			return b, fmt.Errorf("%s: a delta needs old or source_sha256", where)
		}
		if b.file == "" {
			if si.Old == "" || si.New == "" {
				return b, fmt.Errorf("%s: a delta needs payload_file, or old and new to diff", where)
			}
			f, err := delta.ParseFormat(it.Format)
			if err != nil {
				return b, fmt.Errorf("%s: %w", where, err)
			}
			oldb, err := os.ReadFile(rel(si.Old))
			if err != nil {
				return b, err
			}
			newb, err := os.ReadFile(rel(si.New))
			if err != nil {
				return b, err
			}
			if b.data, err = delta.Diff(oldb, newb, f); err != nil {
				return b, fmt.Errorf("%s: diff: %w", where, err)
			}
		}
	} else if b.file == "" {
		b.file = rel(si.New)
	}
	if b.file != "" {
		dg, n, err := fileDigest(b.file)
		if err != nil {
			return b, fmt.Errorf("%s: payload: %w", where, err)
		}
		it.Digest, it.Size = dg, n
	} else {
		sum := sha256.Sum256(b.data)
		it.Digest, it.Size = sum[:], uint64(len(b.data))
	}
	if it.Payload == "" {
		ext := ".img"
		if it.Kind == manifest.KindDelta {
			ext = ".delta"
		}
		it.Payload = it.ID + ext
	}
	b.item = it
	return b, nil
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}
