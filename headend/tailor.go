package headend

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"meterupd/manifest"
	"meterupd/pkgbuild"
	"meterupd/shadow"
)

// Tailor makes the package a node's update request asks for (the request
// flow of docs/mqtt.md): a campaign in tailor mode sends its nodes the
// signed manifest alone (desired.manifest); a node answers on
// state/<id>/request with its characteristics (manifest.Request); the
// head-end answers with a package repacked for the node's group — device
// type, installed version of the manifest's component, hardware revision —
// keeping only the cheapest route from that version
// (pkgbuild.RepackManifest), signed by Signer. Repacked packages are cached
// in the package directory and the store, one per group.
type Tailor struct {
	Signer crypto.Signer

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per group: repacked once per process
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
			g = pkgbuild.Group{DeviceType: req.DeviceType, Component: it.Component, From: v, Hardware: int64(req.Hardware)}
			found = true
			break
		}
	}
	if !found {
		return Package{}, fmt.Errorf("%w: the node has none of the package's components installed", manifest.ErrNotForDevice)
	}
	key := fmt.Sprintf("%s|%s|%s|%s|%d", src.SHA256, g.DeviceType, g.Component, g.From, g.Hardware)
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
	if _, err := pkgbuild.RepackFile(filepath.Join(pk.Dir, c.Package), filepath.Join(pk.Dir, name), g, 0, tl.Signer, nil); err != nil {
		return Package{}, fmt.Errorf("headend: repack %s for %s %s %s: %w", c.Package, g.DeviceType, g.Component, g.From, err)
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

// OnRequest answers a node's update request: when the node's desired
// document is a tailor-mode campaign's manifest, the node gets the package
// for its group as its desired package (same job).
func (m *Campaigns) OnRequest(ctx context.Context, node string, req manifest.Request) {
	log := m.Log.With(slog.String("node", node))
	d, err := m.Store.Desired(ctx, node)
	if err != nil || d.Desired.Manifest == nil || d.Desired.Job == "" {
		log.Info("update request without a manifest sent; ignored")
		return
	}
	c, err := m.Store.Campaign(ctx, d.Desired.Job)
	if err != nil || !c.Tailor {
		log.Info("update request for no tailoring campaign; ignored", slog.String("job", d.Desired.Job))
		return
	}
	if m.Tailor == nil || m.Tailor.Signer == nil {
		log.Error("update request for a tailoring campaign, and no signing key (serve --key)", slog.String("job", c.ID))
		return
	}
	if c.State == CampaignCancelled || c.State == CampaignDone {
		return
	}
	p, err := m.Tailor.Package(ctx, m.Store, m.Packages, c, req)
	if err != nil {
		log.Warn("no package for the request", slog.String("job", c.ID), slog.Any("err", err))
		return
	}
	want := shadow.Desired{Job: c.ID, Activate: c.Activate, Package: m.packageRef(c, p)}
	if _, err := m.Replica.SetDesired(ctx, node, want); err != nil {
		log.Error("tailored package not sent", slog.Any("err", err))
	}
}
