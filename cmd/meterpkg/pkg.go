package main

// Signed update packages: keygen, build, sign, inspect, verify, repack.
// The formats are described in docs/packages.md and in package manifest.

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"meterupd/delta"
	"meterupd/manifest"
	"meterupd/pkgbuild"
)

func init() {
	register(&command{name: "keygen", usage: "[--alg ed25519|p256] PREFIX: write PREFIX.key.pem and PREFIX.pub.pem", run: runKeygen})
	register(&command{name: "build", usage: "SPEC -o PACKAGE [--key KEY.pem]: build a package from a JSON spec (unsigned without --key)", run: runBuild})
	register(&command{name: "sign", usage: "--key KEY.pem IN OUT: sign (or re-sign) a package's manifest", run: runSign})
	register(&command{name: "inspect", usage: "PACKAGE [--json]: show the manifest (signature not checked)", run: runInspect})
	register(&command{name: "verify", usage: "--key PUB.pem [--key ...] PACKAGE: check signature, sequence and every payload", run: runVerify})
	register(&command{name: "repack", usage: "PACKAGE --device-type T --from-version V --key KEY.pem -o OUT [--delta-formats 1,2]: keep only the items a group of nodes needs, re-sign", run: runRepack})
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
	kid, err := pkgbuild.Keygen(pos[0], *alg)
	if errors.Is(err, manifest.ErrAlgorithm) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key id %x (%s): %s.key.pem %s.pub.pem\n", kid, *alg, pos[0], pos[0])
	return nil
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
	s, err := pkgbuild.ReadSpec(pos[0])
	if err != nil {
		return err
	}
	built, err := pkgbuild.Build(s, filepath.Dir(pos[0]))
	if err != nil {
		return err
	}
	var signer crypto.Signer
	if *keyPath != "" {
		if signer, err = pkgbuild.LoadSigner(*keyPath); err != nil {
			return err
		}
	}
	headLen, err := built.WriteFile(*out, signer)
	if err != nil {
		return err
	}
	m, unsigned := built.Manifest, signer == nil
	state := "signed"
	if unsigned {
		state = "unsigned (run meterpkg sign)"
	}
	fmt.Fprintf(stdout, "%s: %d items, manifest %d bytes, %s\n", *out, len(m.Items), headLen, state)
	return nil
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
	signer, err := pkgbuild.LoadSigner(*keyPath)
	if err != nil {
		return err
	}
	env, err := pkgbuild.SignFile(pos[0], pos[1], signer)
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
	h, err := pkgbuild.Open(pos[0])
	if err != nil {
		return err
	}
	defer h.Close()
	m := h.Manifest
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inspectView{Signed: h.Signed, KeyID: hex.EncodeToString(h.KeyID), Size: len(h.Envelope), Manifest: m})
	}
	sig := "unsigned"
	if h.Signed {
		sig = fmt.Sprintf("signed by key %x (not verified: use meterpkg verify)", h.KeyID)
	}
	fmt.Fprintf(stdout, "package %s\nmanifest: schema %d, sequence %d, %d bytes, %s\n", pos[0], m.Schema, m.Sequence, len(h.Envelope), sig)
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
	ring, err := pkgbuild.LoadKeyring(keys)
	if err != nil {
		return err
	}
	p, n, err := pkgbuild.VerifyFile(pos[0], ring, manifest.Options{Floor: *floor, Now: time.Now})
	if err != nil {
		return err
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
	formats := fs.String("delta-formats", "", "node-format delta versions the group applies, as its update requests advertise them (e.g. 1 or 1,2; default: any)")
	out := fs.String("o", "", "output package")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *devType == "" || *fromVer == "" || *keyPath == "" || *out == "" {
		return usageError{"usage: meterpkg repack PACKAGE --device-type T --from-version V --key KEY.pem -o OUT [--component C] [--hardware N] [--delta-formats 1,2] [--verify-key PUB.pem] [--sequence N]"}
	}
	g := pkgbuild.Group{DeviceType: *devType, From: *fromVer, Hardware: *hwRev}
	if *formats != "" {
		vs, err := delta.ParseVersions(*formats)
		if err != nil {
			return usageError{"--delta-formats: " + err.Error()}
		}
		g.DeltaFormats = delta.ItemFormats(vs)
	}
	c, err := manifest.ParseComponent(*comp)
	if err != nil {
		return usageError{err.Error()}
	}
	var ring *manifest.Keyring
	if len(trust) > 0 {
		if ring, err = pkgbuild.LoadKeyring(trust); err != nil {
			return err
		}
	}
	signer, err := pkgbuild.LoadSigner(*keyPath)
	if err != nil {
		return err
	}
	g.Component = c
	r, err := pkgbuild.RepackFile(pos[0], *out, g, *seq, signer, ring)
	if err != nil {
		return err
	}
	var ids []string
	for _, it := range r.Manifest.Items {
		ids = append(ids, it.ID)
	}
	fmt.Fprintf(stdout, "%s: %d of %d items kept (%s), manifest %d bytes\n", *out, len(r.Manifest.Items), len(r.Input.Items), strings.Join(ids, " "), len(r.Envelope))
	return nil
}
