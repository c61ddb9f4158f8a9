package headend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"meterupd/delta"
	"meterupd/internal/atomicfile"
	"meterupd/manifest"
	"meterupd/pkgbuild"
	"meterupd/shadow"
)

// Tailor makes the package a node's update request asks for (the request
// flow of docs/mqtt.md): a campaign in tailor mode sends its nodes the
// signed manifest alone (desired.manifest); a node answers on
// state/<id>/request with its characteristics ({"job", "request":
// manifest.Request}); the head-end answers with the package tailored for
// the node's group — device type, installed version of the manifest's
// component, hardware revision, and the delta formats its request
// advertises (manifest.Request.DeltaFormats; none: version 1 of the node
// format alone, a node from before the field): the same signed manifest,
// with only the payloads of the cheapest route from that version among
// the deltas the node applies (pkgbuild.RepackManifest picks them,
// pkgbuild.Package.Tailor writes them). The node selects among the same
// items (delta.ItemFormats on both sides), so it picks the route whose
// payloads it is sent. No release key is
// needed online. Tailored packages are cached in the package directory and
// the store, one per group.
type Tailor struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex // per group: tailored once per process
}

// ErrNotReadable is a package whose manifest schema the node does not read.
var ErrNotReadable = errors.New("headend: the node does not read this package's schema")

// envelope returns the signed manifest entry of package name.
func envelope(pk *Packages, name string) ([]byte, error) {
	f, err := pk.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := pkgbuild.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%w: package %s: %v", ErrBadInput, name, err)
	}
	if !p.Signed {
		return nil, fmt.Errorf("%w: package %s is not signed", ErrBadInput, name)
	}
	if len(p.Envelope) > shadow.MaxManifestSize {
		return nil, fmt.Errorf("%w: package %s: manifest of %d bytes, at most %d in a desired document", ErrBadInput, name, len(p.Envelope), shadow.MaxManifestSize)
	}
	return p.Envelope, nil
}

func (tl *Tailor) lock(key string) *sync.Mutex {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.locks == nil {
		tl.locks = map[string]*sync.Mutex{}
	}
	if tl.locks[key] == nil {
		tl.locks[key] = new(sync.Mutex)
	}
	return tl.locks[key]
}

// Package returns the package of campaign c for the node that sent req:
// from the cache, or repacked now.
func (tl *Tailor) Package(ctx context.Context, st Store, pk *Packages, c Campaign, req manifest.Request) (Package, error) {
	src, err := pk.Stat(c.Package)
	if err != nil {
		return Package{}, err
	}
	f, err := pk.Open(c.Package)
	if err != nil {
		return Package{}, err
	}
	p, err := pkgbuild.Read(f)
	f.Close()
	if err != nil {
		return Package{}, fmt.Errorf("%w: package %s: %v", ErrBadInput, c.Package, err)
	}
	m := p.Manifest
	schemas := req.Schemas
	if len(schemas) == 0 {
		schemas = []uint{manifest.SchemaVersion} // nodes that read schema 1 alone
	}
	if !slices.Contains(schemas, m.Schema) {
		return Package{}, fmt.Errorf("%w: schema %d, the node reads %v", ErrNotReadable, m.Schema, schemas)
	}
	// The group's component: the first of the manifest's that the node
	// has installed.
	var g pkgbuild.Group
	found := false
	for _, it := range m.Items {
		if v, ok := req.Versions[it.Component.String()]; ok {
			g = pkgbuild.Group{DeviceType: req.DeviceType, Component: it.Component, From: v, Hardware: int64(req.Hardware),
				DeltaFormats: delta.ItemFormats(req.DeltaFormats)}
			found = true
			break
		}
	}
	if !found {
		return Package{}, fmt.Errorf("%w: the node has none of the package's components installed", manifest.ErrNotForDevice)
	}
	// The group: its device type, version, hardware revision and the
	// delta formats it applies (two nodes on one version that read
	// different formats get different packages).
	key := fmt.Sprintf("%s|%s|%s|%s|%d|%s", src.SHA256, g.DeviceType, g.Component, g.From, g.Hardware, strings.Join(g.DeltaFormats, ","))
	l := tl.lock(key)
	l.Lock()
	defer l.Unlock()
	if cached, err := st.Package(ctx, key); err == nil {
		if got, err := pk.Stat(cached.Name); err == nil && got.SHA256 == cached.SHA256 {
			return cached, nil
		}
	} else if !errors.Is(err, ErrNotFound) {
		return Package{}, err
	}
	sum := sha256.Sum256([]byte(key))
	name := c.ID + "-" + hex.EncodeToString(sum[:6]) + ".pkg"
	if len(name) > 64 {
		name = "t-" + hex.EncodeToString(sum[:12]) + ".pkg"
	}
	// The payloads of the group's route (and of other components that
	// apply to it); the manifest and its signature stay as they are.
	route, err := pkgbuild.RepackManifest(m, g)
	if err != nil {
		return Package{}, fmt.Errorf("headend: tailor %s for %s %s %s: %w", c.Package, g.DeviceType, g.Component, g.From, err)
	}
	keep := map[string]bool{}
	for _, it := range route.Items {
		keep[it.Payload] = true
	}
	in, err := pk.Open(c.Package)
	if err != nil {
		return Package{}, err
	}
	defer in.Close()
	full, err := pkgbuild.Read(in)
	if err != nil {
		return Package{}, fmt.Errorf("%w: package %s: %v", ErrBadInput, c.Package, err)
	}
	if err := atomicfile.Write(filepath.Join(pk.Dir, name), 0o644, func(w io.Writer) error { return full.Tailor(w, keep) }); err != nil {
		return Package{}, fmt.Errorf("headend: tailor %s for %s %s %s: %w", c.Package, g.DeviceType, g.Component, g.From, err)
	}
	out, err := pk.Stat(name)
	if err != nil {
		return Package{}, err
	}
	out.Key = key
	if err := st.PutPackage(ctx, out); err != nil {
		os.Remove(filepath.Join(pk.Dir, name))
		return Package{}, err
	}
	return out, nil
}

// OnRequest answers a node's update request for job: when the node's
// desired document is that tailor-mode campaign's manifest, the node gets
// the package for its group as its desired package (same job).
func (m *Campaigns) OnRequest(ctx context.Context, node, job string, req manifest.Request) {
	log := m.Log.With(slog.String("node", node))
	d, err := m.Store.Desired(ctx, node)
	if err != nil || d.Desired.Manifest == nil || d.Desired.Job == "" || (job != "" && job != d.Desired.Job) {
		log.Info("update request for no manifest sent to the node; ignored", slog.String("job", job))
		return
	}
	c, err := m.Store.Campaign(ctx, d.Desired.Job)
	if err != nil || !c.Tailor {
		log.Info("update request for no tailoring campaign; ignored", slog.String("job", d.Desired.Job))
		return
	}
	if m.Tailor == nil {
		m.Tailor = new(Tailor) // only its locks; set by Serve before any request
	}
	if c.State == CampaignCancelled || c.State == CampaignDone {
		return
	}
	p, err := m.Tailor.Package(ctx, m.Store, m.Packages, c, req)
	if err != nil {
		log.Warn("no package for the request", slog.String("job", c.ID), slog.Any("err", err))
		if errors.Is(err, ErrNotReadable) || errors.Is(err, manifest.ErrNotForDevice) || errors.Is(err, manifest.ErrGap) {
			// Nothing in the release serves this node (a schema it does
			// not read, no item for it, no route in a delta format it
			// applies): it counts as failed, "not applicable", at once
			// instead of holding its wave until the timeout.
			if _, err := m.Store.MoveTarget(ctx, c.ID, node, TargetSent, TargetFailed, shadow.ResultNotApplicable, m.Now()); err != nil {
				log.Error("target not moved", slog.Any("err", err))
			}
		}
		return
	}
	want := shadow.Desired{Job: c.ID, Activate: c.Activate, Package: m.packageRef(c, p)}
	if _, err := m.Replica.SetDesired(ctx, node, want); err != nil {
		log.Error("tailored package not sent", slog.Any("err", err))
	}
}
