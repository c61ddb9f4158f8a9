package main

// Signed update packages: keygen, build, sign, inspect, verify, repack.
// The formats are described in docs/packages.md and in package manifest.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"meterupd/delta"
	"meterupd/internal/atomicfile"
	"meterupd/manifest"
)

func init() {
	register(&command{name: "keygen", usage: "[--alg ed25519|p256] PREFIX: write PREFIX.key.pem and PREFIX.pub.pem", run: runKeygen})
	register(&command{name: "build", usage: "SPEC -o PACKAGE [--key KEY.pem]: build a package from a JSON spec (unsigned without --key)", run: runBuild})
	register(&command{name: "sign", usage: "--key KEY.pem IN OUT: sign (or re-sign) a package's manifest", run: runSign})
	register(&command{name: "inspect", usage: "PACKAGE [--json]: show the manifest (signature not checked)", run: runInspect})
	register(&command{name: "verify", usage: "--key PUB.pem [--key ...] PACKAGE: check signature, sequence and every payload", run: runVerify})
	register(&command{name: "repack", usage: "PACKAGE --device-type T --from-version V --key KEY.pem -o OUT: keep only the items a group of nodes needs, re-sign", run: runRepack})
}

// parseFlags parses fs from args, allowing flags and positional arguments
// in any order, and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runKeygen(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	alg := fs.String("alg", "ed25519", "ed25519 or p256")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: meterpkg keygen [--alg ed25519|p256] PREFIX"}
	}
	priv, err := manifest.GenerateKey(*alg)
	if err != nil {
		return usageError{err.Error()}
	}
	privPEM, err := manifest.MarshalPrivateKeyPEM(priv)
	if err != nil {
		return err
	}
	pubPEM, err := manifest.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		return err
	}
	kid, _ := manifest.KeyID(priv.Public())
	if err := atomicfile.Write(pos[0]+".key.pem", 0o600, func(w io.Writer) error { _, err := w.Write(privPEM); return err }); err != nil {
		return err
	}
	if err := atomicfile.Write(pos[0]+".pub.pem", 0o644, func(w io.Writer) error { _, err := w.Write(pubPEM); return err }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key id %x (%s): %s.key.pem %s.pub.pem\n", kid, *alg, pos[0], pos[0])
	return nil
}

// spec is the build input: the manifest's header fields, defaults for the
// items, and the items with where their bytes come from. Paths are
// relative to the spec file.
type spec struct {
	Sequence  uint64            `json:"sequence"`
	Downgrade bool              `json:"downgrade"`
	Expires   string            `json:"expires"` // RFC 3339, optional
	VendorID  uint32            `json:"vendor_id"`
	ClassID   uint32            `json:"class_id"`
	Targets   []manifest.Target `json:"targets"`
	AddKeys   []string          `json:"add_keys"`    // public key PEM files to add to the nodes' keyrings
	RetireKey []string          `json:"retire_keys"` // public key PEM files or hex key ids to retire
	Defaults  specItem          `json:"defaults"`
	Items     []specItem        `json:"items"`
}

type specItem struct {
	ID          string                  `json:"id"`
	Component   *manifest.Component     `json:"component"`
	Kind        *manifest.Kind          `json:"kind"`
	Format      string                  `json:"format"` // delta format: node (default), bsdiff40, bsdiff43
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
}

func readSpec(path string) (*spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var s spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
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

// buildManifest turns a spec into a manifest, computing deltas and digests.
func buildManifest(s *spec, dir string) (*manifest.Manifest, []builtItem, error) {
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
			return nil, nil, fmt.Errorf("spec: expires: %w", err)
		}
		m.Expires = t.Unix()
	}
	for _, p := range s.AddKeys {
		b, err := os.ReadFile(rel(p))
		if err != nil {
			return nil, nil, err
		}
		pub, err := manifest.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, nil, fmt.Errorf("spec: add_keys %s: %w", p, err)
		}
		u, err := manifest.NewKeyUpdate(pub)
		if err != nil {
			return nil, nil, err
		}
		m.Keys = append(m.Keys, u)
	}
	for _, r := range s.RetireKey {
		kid, err := hex.DecodeString(r)
		if err != nil || len(kid) != manifest.KeyIDSize {
			b, ferr := os.ReadFile(rel(r))
			if ferr != nil {
				return nil, nil, fmt.Errorf("spec: retire_keys %q: neither a key id nor a readable file", r)
			}
			pub, perr := manifest.ParsePublicKeyPEM(b)
			if perr != nil {
				return nil, nil, fmt.Errorf("spec: retire_keys %s: %w", r, perr)
			}
			kid, _ = manifest.KeyID(pub)
		}
		m.Keys = append(m.Keys, manifest.KeyUpdate{Op: manifest.KeyRetire, KID: kid})
	}
	var built []builtItem
	for i, si := range s.Items {
		d := s.Defaults
		it := manifest.Item{ID: si.ID, Format: si.Format, From: si.From, To: si.To, Step: si.Step, Payload: si.Payload, TargetSize: si.TargetSize}
		pick := func(a, b []string) []string {
			if a != nil {
				return a
			}
			return b
		}
		it.DeviceTypes = pick(si.DeviceTypes, d.DeviceTypes)
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
		where := fmt.Sprintf("spec: items[%d] (%s)", i, si.ID)
		b := builtItem{file: rel(si.PayloadFile)}
		// Target image: digest and size.
		switch {
		case si.New != "":
			dg, n, err := fileDigest(rel(si.New))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: new: %w", where, err)
			}
			it.TargetDigest, it.TargetSize = dg, n
		case si.TargetHash != "":
			dg, err := hex.DecodeString(si.TargetHash)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: target_sha256: %w", where, err)
			}
			it.TargetDigest = dg
		default:
			return nil, nil, fmt.Errorf("%s: needs new or target_sha256", where)
		}
		if it.Kind == manifest.KindDelta {
			switch {
			case si.Old != "":
				dg, _, err := fileDigest(rel(si.Old))
				if err != nil {
					return nil, nil, fmt.Errorf("%s: old: %w", where, err)
				}
				it.SourceDigest = dg
			case si.SourceHash != "":
				dg, err := hex.DecodeString(si.SourceHash)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: source_sha256: %w", where, err)
				}
				it.SourceDigest = dg
			default:
				return nil, nil, fmt.Errorf("%s: a delta needs old or source_sha256", where)
			}
			if b.file == "" {
				if si.Old == "" || si.New == "" {
					return nil, nil, fmt.Errorf("%s: a delta needs payload_file, or old and new to diff", where)
				}
				f, err := delta.ParseFormat(it.Format)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", where, err)
				}
				oldb, err := os.ReadFile(rel(si.Old))
				if err != nil {
					return nil, nil, err
				}
				newb, err := os.ReadFile(rel(si.New))
				if err != nil {
					return nil, nil, err
				}
				if b.data, err = delta.Diff(oldb, newb, f); err != nil {
					return nil, nil, fmt.Errorf("%s: diff: %w", where, err)
				}
			}
		} else if b.file == "" {
			b.file = rel(si.New)
		}
		if b.file != "" {
			dg, n, err := fileDigest(b.file)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: payload: %w", where, err)
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
		m.Items = append(m.Items, it)
		built = append(built, b)
	}
	return m, built, nil
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func runBuild(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("o", "", "output package")
	keyPath := fs.String("key", "", "signing key (PEM); without it the package is unsigned")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usageError{"usage: meterpkg build SPEC -o PACKAGE [--key KEY.pem]"}
	}
	s, err := readSpec(pos[0])
	if err != nil {
		return err
	}
	m, built, err := buildManifest(s, filepath.Dir(pos[0]))
	if err != nil {
		return err
	}
	payload, err := manifest.Encode(m)
	if err != nil {
		return err
	}
	head, unsigned := payload, true
	if *keyPath != "" {
		if head, err = signPayload(payload, *keyPath); err != nil {
			return err
		}
		unsigned = false
	}
	err = atomicfile.Write(*out, 0o644, func(w io.Writer) error {
		pw, err := manifest.NewWriter(w, head, unsigned)
		if err != nil {
			return err
		}
		for _, b := range built {
			r, err := b.open()
			if err != nil {
				return err
			}
			err = pw.WritePayload(r)
			r.Close()
			if err != nil {
				return err
			}
		}
		return pw.Close()
	})
	if err != nil {
		return err
	}
	state := "signed"
	if unsigned {
		state = "unsigned (run meterpkg sign)"
	}
	fmt.Fprintf(stdout, "%s: %d items, manifest %d bytes, %s\n", *out, len(m.Items), len(head), state)
	return nil
}

func signPayload(payload []byte, keyPath string) ([]byte, error) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	priv, err := manifest.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return manifest.Sign(payload, priv)
}

// hostPackage reads a package on the host without verifying it: the
// manifest entry, then the payload entries through next.
type hostPackage struct {
	f        *os.File
	tr       *tar.Reader
	signed   bool
	envelope []byte // the manifest entry as stored
	payload  []byte // the CBOR manifest
	kid      []byte
	m        *manifest.Manifest
}

func openHost(path string) (*hostPackage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := &hostPackage{f: f, tr: tar.NewReader(f)}
	hdr, err := h.tr.Next()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w: %v", path, manifest.ErrContainer, err)
	}
	if hdr.Size > manifest.MaxManifestSize {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, manifest.ErrTooLarge)
	}
	h.envelope = make([]byte, hdr.Size)
	if _, err := io.ReadFull(h.tr, h.envelope); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w: %v", path, manifest.ErrTruncated, err)
	}
	switch hdr.Name {
	case manifest.ManifestName:
		h.signed = true
		if h.payload, h.kid, err = manifest.PayloadUnverified(h.envelope); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case manifest.UnsignedManifestName:
		h.payload = h.envelope
	default:
		f.Close()
		return nil, fmt.Errorf("%s: %w: first entry %q", path, manifest.ErrContainer, hdr.Name)
	}
	if h.m, err = manifest.Decode(h.payload); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// copyPayloads writes into pw the payloads of h whose names are in keep
// (all when keep is nil), in container order; pw checks their digests.
func (h *hostPackage) copyPayloads(pw *manifest.Writer, keep map[string]bool) error {
	for {
		hdr, err := h.tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", manifest.ErrContainer, err)
		}
		if keep != nil && !keep[hdr.Name] {
			continue
		}
		if err := pw.WritePayload(h.tr); err != nil {
			return err
		}
	}
}

func runSign(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	keyPath := fs.String("key", "", "signing key (PEM)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || *keyPath == "" {
		return usageError{"usage: meterpkg sign --key KEY.pem IN OUT"}
	}
	h, err := openHost(pos[0])
	if err != nil {
		return err
	}
	defer h.f.Close()
	env, err := signPayload(h.payload, *keyPath)
	if err != nil {
		return err
	}
	err = atomicfile.Write(pos[1], 0o644, func(w io.Writer) error {
		pw, err := manifest.NewWriter(w, env, false)
		if err != nil {
			return err
		}
		if err := h.copyPayloads(pw, nil); err != nil {
			return err
		}
		return pw.Close()
	})
	if err != nil {
		return err
	}
	_, kid, _ := manifest.PayloadUnverified(env)
	fmt.Fprintf(stdout, "%s: signed by key %x, manifest %d bytes\n", pos[1], kid, len(env))
	return nil
}

// inspectView is inspect --json's output.
type inspectView struct {
	Signed   bool               `json:"signed"`
	KeyID    string             `json:"key_id,omitempty"`
	Size     int                `json:"manifest_bytes"`
	Manifest *manifest.Manifest `json:"manifest"`
}

func runInspect(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: meterpkg inspect PACKAGE [--json]"}
	}
	h, err := openHost(pos[0])
	if err != nil {
		return err
	}
	defer h.f.Close()
	m := h.m
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inspectView{Signed: h.signed, KeyID: hex.EncodeToString(h.kid), Size: len(h.envelope), Manifest: m})
	}
	sig := "unsigned"
	if h.signed {
		sig = fmt.Sprintf("signed by key %x (not verified: use meterpkg verify)", h.kid)
	}
	fmt.Fprintf(stdout, "package %s\nmanifest: schema %d, sequence %d, %d bytes, %s\n", pos[0], m.Schema, m.Sequence, len(h.envelope), sig)
	if m.VendorID != 0 || m.ClassID != 0 {
		fmt.Fprintf(stdout, "vendor %d, class %d\n", m.VendorID, m.ClassID)
	}
	if m.Downgrade {
		fmt.Fprintln(stdout, "DOWNGRADE allowed (signed flag)")
	}
	if m.Expires != 0 {
		fmt.Fprintf(stdout, "expires %s\n", time.Unix(m.Expires, 0).UTC().Format(time.RFC3339))
	}
	for _, t := range m.Targets {
		fmt.Fprintf(stdout, "target %s %s\n", t.Component, t.Version)
	}
	for _, k := range m.Keys {
		op := "add"
		if k.Op == manifest.KeyRetire {
			op = "retire"
		}
		fmt.Fprintf(stdout, "key update: %s %x\n", op, k.KID)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMPONENT\tKIND\tFROM\tTO\tDEVICES\tHW\tPAYLOAD\tSIZE\tSHA256\tCHECKS")
	for _, it := range m.Items {
		from := it.From
		if from == "" {
			from = "-"
		}
		kind := it.Kind.String()
		if it.Format != "" {
			kind += "/" + it.Format
		}
		devs := strings.Join(it.DeviceTypes, ",")
		if devs == "" {
			devs = "any"
		}
		hw := fmt.Sprintf("%d-%d", it.Hardware.Min, it.Hardware.Max)
		if it.Hardware.Max == 0 {
			hw = fmt.Sprintf("%d-", it.Hardware.Min)
		}
		var checks []string
		for _, c := range it.Checks {
			s := c.Kind
			if c.Arg != "" {
				s += "=" + c.Arg
			}
			checks = append(checks, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%x\t%s\n", it.ID, it.Component, kind, from, it.To, devs, hw, it.Payload, it.Size, it.Digest[:8], strings.Join(checks, ","))
	}
	return tw.Flush()
}

func loadKeyring(paths []string) (*manifest.Keyring, error) {
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			pub, err := manifest.ParsePublicKeyPEM(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if b, err = manifest.MarshalPublicKeyPEM(pub); err != nil {
				return nil, err
			}
		}
		all = append(all, b...)
	}
	k, err := manifest.ParseKeyringPEM(all)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func runVerify(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var keys multiFlag
	fs.Var(&keys, "key", "trusted public key (PEM); repeat for several")
	floor := fs.Uint64("floor", 0, "sequence floor: the package must be newer")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(keys) == 0 {
		return usageError{"usage: meterpkg verify --key PUB.pem [--key ...] [--floor N] PACKAGE"}
	}
	ring, err := loadKeyring(keys)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := manifest.OpenPackage(f, ring, manifest.Options{Floor: *floor, Now: time.Now})
	if err != nil {
		return err
	}
	n := 0
	for {
		_, r, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(stdout, "%s: OK: signed by key %x, sequence %d, %d payloads verified\n", pos[0], p.KeyID(), p.Manifest().Sequence, n)
	return nil
}

func runRepack(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("repack", flag.ContinueOnError)
	devType := fs.String("device-type", "", "device type of the group")
	fromVer := fs.String("from-version", "", "installed version of the group")
	comp := fs.String("component", "system", "component whose installed version is --from-version")
	hwRev := fs.Int64("hardware", -1, "hardware revision of the group (default: any)")
	keyPath := fs.String("key", "", "signing key (PEM) the nodes trust")
	var trust multiFlag
	fs.Var(&trust, "verify-key", "verify the input against this public key first (repeatable)")
	seq := fs.Uint64("sequence", 0, "new sequence number (default: the input's)")
	out := fs.String("o", "", "output package")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *devType == "" || *fromVer == "" || *keyPath == "" || *out == "" {
		return usageError{"usage: meterpkg repack PACKAGE --device-type T --from-version V --key KEY.pem -o OUT [--component C] [--hardware N] [--verify-key PUB.pem] [--sequence N]"}
	}
	c, err := manifest.ParseComponent(*comp)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(trust) > 0 {
		ring, err := loadKeyring(trust)
		if err != nil {
			return err
		}
		if err := verifyFile(pos[0], ring); err != nil {
			return err
		}
	}
	h, err := openHost(pos[0])
	if err != nil {
		return err
	}
	defer h.f.Close()
	nm, err := repackManifest(h.m, *devType, c, *fromVer, *hwRev)
	if err != nil {
		return err
	}
	if *seq != 0 {
		nm.Sequence = *seq
	}
	payload, err := manifest.Encode(nm)
	if err != nil {
		return err
	}
	env, err := signPayload(payload, *keyPath)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, it := range nm.Items {
		keep[it.Payload] = true
	}
	err = atomicfile.Write(*out, 0o644, func(w io.Writer) error {
		pw, err := manifest.NewWriter(w, env, false)
		if err != nil {
			return err
		}
		if err := h.copyPayloads(pw, keep); err != nil {
			return err
		}
		return pw.Close()
	})
	if err != nil {
		return err
	}
	var ids []string
	for _, it := range nm.Items {
		ids = append(ids, it.ID)
	}
	fmt.Fprintf(stdout, "%s: %d of %d items kept (%s), manifest %d bytes\n", *out, len(nm.Items), len(h.m.Items), strings.Join(ids, " "), len(env))
	return nil
}

func verifyFile(path string, ring *manifest.Keyring) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := manifest.OpenPackage(f, ring, manifest.Options{})
	if err != nil {
		return err
	}
	for {
		_, r, err := p.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
}

// repackManifest keeps the items a group of nodes (device type, installed
// version of one component, optionally a hardware revision) needs: the
// cheapest route for that component, and the items of other components
// that apply to the device type. Key updates and targets are kept.
func repackManifest(m *manifest.Manifest, devType string, c manifest.Component, from string, hwRev int64) (*manifest.Manifest, error) {
	node := manifest.NodeInfo{VendorID: m.VendorID, ClassID: m.ClassID, DeviceType: devType, Installed: map[manifest.Component]string{c: from}}
	probe := *m
	probe.Items = nil
	var orig []int // probe item index → m item index
	for i, it := range m.Items {
		if it.Component != c {
			continue
		}
		if hwRev < 0 {
			it.Hardware = manifest.HardwareRange{} // any hardware of the group
		}
		probe.Items = append(probe.Items, it)
		orig = append(orig, i)
	}
	if hwRev >= 0 {
		node.Hardware = uint32(hwRev)
	}
	keep := map[int]bool{}
	if len(probe.Items) > 0 {
		plan, err := probe.Select(node)
		if err != nil {
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
		n := node
		if hwRev < 0 {
			it.Hardware = manifest.HardwareRange{}
		}
		if it.Applies(n) {
			keep[i] = true
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
		return nil, fmt.Errorf("%w: nothing for device type %q at %s %s", manifest.ErrNotForDevice, devType, c, from)
	}
	return &nm, nil
}
