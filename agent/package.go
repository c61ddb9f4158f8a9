package agent

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"meterupd/boards/hw"
	"meterupd/delta"
	"meterupd/internal/atomicfile"
	"meterupd/manifest"
	"meterupd/slots"
	"meterupd/validate"
)

// Identity is what the node says of itself when it selects the items of a
// package and when it asks a distributor for one (the software update
// request): the board file or the provisioning data gives it.
type Identity struct {
	VendorID   uint32   `json:"vendor_id"`
	ClassID    uint32   `json:"class_id"`
	DeviceType string   `json:"device_type"`
	Hardware   uint32   `json:"hardware_revision"`
	Variant    string   `json:"variant,omitempty"`
	Functions  []string `json:"functions,omitempty"` // enabled functionalities
	Present    []string `json:"present,omitempty"`   // modules present
	// DeltaFormats are the node-format delta versions this node
	// advertises in its update request and selects delta items by
	// (delta.ItemFormats); versions this build does not apply are left
	// out (none left: version 1 alone, as a node without the field).
	// Empty: every version it applies (delta.NodeFormats). Set it to
	// hold a node on an older format (or to play an older node in a
	// lab).
	DeltaFormats []int `json:"delta_formats,omitempty"`
}

// deltaFormats are the node-format versions this node advertises.
func (id Identity) deltaFormats() []int {
	if len(id.DeltaFormats) == 0 {
		return delta.NodeFormats
	}
	var out []int
	for _, v := range id.DeltaFormats {
		if slices.Contains(delta.NodeFormats, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// ErrNoKeys is returned when a signed package arrives at a node without a
// trusted keyring.
var ErrNoKeys = errors.New("agent: no trusted keys: provision the node's keyring")

// Keyring returns the keys the node trusts now: the journal's (after a
// signed key update) or the provisioned ones.
func (a *Agent) Keyring() (*manifest.Keyring, error) {
	if len(a.rec.Keys) > 0 {
		return manifest.ParseKeyringPEM(a.rec.Keys)
	}
	if a.opt.Keys == nil {
		return nil, ErrNoKeys
	}
	return a.opt.Keys, nil
}

// Facts gathers what validation checks against: identity, power source,
// room in the idle slot, installed versions and digests.
func (a *Agent) Facts() (validate.Facts, hw.Slot, error) {
	id := a.opt.Identity
	booted, err := a.booted()
	if err != nil {
		return validate.Facts{}, "", err
	}
	f := validate.Facts{VendorID: id.VendorID, ClassID: id.ClassID, DeviceType: id.DeviceType, Hardware: id.Hardware,
		Variant: id.Variant, Functions: id.Functions, Present: id.Present,
		Installed: map[manifest.Component]string{}, Digests: map[manifest.Component][]byte{},
		DeltaFormats: delta.ItemFormats(id.deltaFormats())}
	if p, err := a.b.Power().Source(); err == nil {
		f.Power = p
	}
	si := a.rec.slot(booted)
	f.Installed[manifest.ComponentSystem] = si.Version
	if d, err := hex.DecodeString(si.SHA256); err == nil {
		f.Digests[manifest.ComponentSystem] = d
	}
	a.componentVersions(f.Installed)
	target := slots.IdleSlot(booted, a.rec.stateOf)
	if fl, err := a.b.Slot(target); err == nil {
		f.FreeBytes = uint64(fl.Size())
	}
	return f, booted, nil
}

// Request is the software update request this node would send.
func (a *Agent) Request(m *manifest.Manifest) (manifest.Request, error) {
	a.refreshModem(context.Background())
	f, _, err := a.Facts()
	if err != nil {
		return manifest.Request{}, err
	}
	r := manifest.NewRequest(f.Node(), a.rec.Floor, m)
	r.DeltaFormats = a.opt.Identity.deltaFormats()
	return r, nil
}

// PackageError is a signed package refused before anything changed. Checks
// holds the validation outcomes when validation refused it.
type PackageError struct {
	Err    error
	Checks []validate.Result
}

func (e *PackageError) Error() string { return "package refused: " + e.Err.Error() }
func (e *PackageError) Unwrap() error { return e.Err }

// InstallPackage installs a signed package read from r: the signature is
// checked before any field is used, then the sequence number against the
// floor; the node's items are selected and validated; the payloads it
// needs stream into the package store, each hashed as it comes (a payload
// this node needs missing, an unlisted one, or a wrong digest refuses the
// whole package; a payload it does not need may be absent: a tailored
// package); then the install path runs as for a bare image, and the
// resulting slot is hashed against the signed target digest before it is
// armed. A refused package changes nothing: not the slots, not the
// journal, not the store.
func (a *Agent) InstallPackage(ctx context.Context, r io.Reader, activate bool) error {
	return a.InstallPackageWith(ctx, r, InstallRequest{Activate: activate})
}

// InstallPackageWith is InstallPackage with the options of an
// InstallRequest (Activate, CommitTrial, and ID: the job that sent the
// package, reported with it; empty: "pkg-" and its sequence number); its
// Item is ignored: the package gives it.
func (a *Agent) InstallPackageWith(ctx context.Context, r io.Reader, opt InstallRequest) error {
	activate := opt.Activate
	if err := a.checkRequest(opt); err != nil {
		return err
	}
	if err := a.idleFor(opt.CommitTrial); err != nil {
		return err
	}
	a.refreshModem(ctx)
	keys, err := a.Keyring()
	if err != nil {
		return err
	}
	// Tailored: a head-end may send only the payloads of this node's
	// install path, under the manifest signed for all; storePackage
	// refuses the package if one this node needs is absent.
	pkg, err := manifest.OpenPackage(r, keys, manifest.Options{Floor: a.rec.Floor, Now: a.clk.Now, Tailored: true})
	if err != nil {
		return &PackageError{Err: err}
	}
	m := pkg.Manifest()
	facts, _, err := a.Facts()
	if err != nil {
		return err
	}
	newKeys, err := keys.Apply(m.Keys)
	if err != nil {
		return &PackageError{Err: err}
	}
	var keysPEM []byte
	if len(m.Keys) > 0 {
		if keysPEM, err = newKeys.MarshalPEM(); err != nil {
			return err
		}
	}
	var plan manifest.Plan
	if len(m.Items) > 0 {
		if plan, err = pkg.Select(facts.Node()); err != nil {
			return &PackageError{Err: err}
		}
		if err := downgradeOnly(m, facts.Node()); err != nil {
			return &PackageError{Err: err}
		}
	}
	rep, err := validate.Plan(plan, facts)
	if err != nil {
		return &PackageError{Err: err, Checks: rep.Results}
	}
	want := map[int]bool{}
	var steps, comps []manifest.Step
	for _, s := range rep.Install {
		if s.Item.Component == manifest.ComponentSystem {
			want[s.Index] = true
			steps = append(steps, s)
			continue
		}
		why, err := a.componentSkip(s)
		if err != nil {
			return &PackageError{Err: err, Checks: rep.Results}
		}
		if why != "" {
			// This node cannot install the item: recorded as skipped,
			// the rest goes on.
			rep.Results = append(rep.Results, validate.Result{Item: s.Item.ID, Level: validate.Skip,
				Outcomes: []validate.Outcome{{Check: "installer", Detail: why}}})
			continue
		}
		want[s.Index] = true
		comps = append(comps, s)
	}
	// issue 15: a modem item's way back is stored with it when the
	// package carries it (a tailored package may leave it out: the module
	// then keeps its new firmware, as without one).
	optional := map[int]bool{}
	for _, s := range comps {
		if ri := revertIndex(m, s.Item); ri >= 0 {
			optional[ri] = true
		}
	}
	if err := componentOrder(comps, facts.Installed[manifest.ComponentSystem]); err != nil {
		return &PackageError{Err: err, Checks: rep.Results}
	}
	if err := irreversibleFirst(comps, steps); err != nil {
		return &PackageError{Err: err, Checks: rep.Results}
	}
	id := opt.ID // the head-end's job, when it sent the package
	if id == "" {
		id = fmt.Sprintf("pkg-%d", m.Sequence)
	}
	stored, err := a.storePackage(pkg, want, optional, id)
	if err != nil {
		return &PackageError{Err: err, Checks: rep.Results}
	}
	if len(comps) > 0 {
		return a.acceptComponents(ctx, m, id, comps, steps, stored, keysPEM, compactChecks(rep.Results), opt)
	}
	if len(steps) == 0 {
		for _, p := range stored {
			os.Remove(p)
		}
		if err := a.endTrial(ctx, nil); err != nil {
			return err
		}
		// Nothing to install here (key updates only, or nothing for this
		// node): the package is consumed now.
		rec := a.rec.clone()
		rec.Floor = max(rec.Floor, m.Sequence)
		if keysPEM != nil {
			rec.Keys = keysPEM
		}
		rec.Last = &Result{ID: id, Code: Committed, Version: facts.Installed[manifest.ComponentSystem], Reason: "nothing to install for this node", Checks: compactChecks(rep.Results)}
		if keysPEM != nil {
			rec.Last.Reason = "trusted keys updated"
		}
		return a.commit(rec)
	}
	item, err := installItem(steps, stored)
	if err != nil {
		for _, p := range stored {
			os.Remove(p)
		}
		return &PackageError{Err: err, Checks: rep.Results}
	}
	if err := a.prepare(&item); err != nil {
		for _, p := range stored {
			os.Remove(p)
		}
		return &PackageError{Err: err, Checks: rep.Results}
	}
	if err := a.endTrial(ctx, slices.Collect(maps.Values(stored))); err != nil {
		return err
	}
	a.log.Info("package accepted", slog.Uint64("sequence", m.Sequence), slog.Int("steps", len(steps)), slog.String("target", item.Version))
	return a.accept(ctx, InstallRequest{ID: id, Origin: opt.Origin, Item: item, Activate: activate, ActivateAt: opt.ActivateAt, MaxDefer: opt.MaxDefer, Force: opt.Force}, func(u *Update) {
		u.Seq, u.Keys, u.Checks = m.Sequence, keysPEM, compactChecks(rep.Results)
	})
}

// downgradeOnly refuses a package whose items for a component of this
// node all lead to versions older than the installed one, without the
// signed downgrade flag. Select plans nothing for such a component (every
// item is for a version already passed); accepted, the package would be
// recorded as installed with nothing installed and consume its sequence
// number, and a later package with the same or a lower number, the real
// one, would be refused as a replay.
func downgradeOnly(m *manifest.Manifest, node manifest.NodeInfo) error {
	if m.Downgrade {
		return nil
	}
	older := map[manifest.Component]string{}
	forward := map[manifest.Component]bool{}
	for i := range m.Items {
		it := &m.Items[i]
		inst, ok := node.Installed[it.Component]
		if !it.Applies(node) || !ok || inst == "" {
			continue
		}
		if manifest.CompareVersions(it.To, inst) < 0 {
			older[it.Component] = it.To
		} else {
			forward[it.Component] = true
		}
	}
	for c, to := range older {
		if !forward[c] {
			return fmt.Errorf("%w: %s %s → %s", manifest.ErrDowngrade, c, node.Installed[c], to)
		}
	}
	return nil
}

// installItem turns the system-set steps of a plan into one install item:
// one full image, or a chain of deltas from the running set.
func installItem(steps []manifest.Step, stored map[int]string) (InstallItem, error) {
	first, last := steps[0].Item, steps[len(steps)-1].Item
	it := InstallItem{Version: last.To, SHA256: hex.EncodeToString(last.TargetDigest), Size: int64(last.TargetSize)}
	if first.Kind == manifest.KindFull {
		if len(steps) > 1 {
			return it, fmt.Errorf("%w: a full image followed by deltas cannot be installed in one pass; repack the package", ErrBadRequest)
		}
		it.Kind = FullImage
	} else {
		it.Kind = Delta
		it.SourceSHA256 = hex.EncodeToString(first.SourceDigest)
	}
	for _, s := range steps {
		if s.Item.Kind == manifest.KindFull && len(steps) > 1 {
			return it, fmt.Errorf("%w: a full image inside a delta chain", ErrBadRequest)
		}
		it.Payloads = append(it.Payloads, stored[s.Index])
	}
	return it, nil
}

// storePackage streams the package's payloads: the wanted ones into the
// package store (temp, fsync, rename once the digest is checked), the
// others drained and checked. Any error removes what it stored.
func (a *Agent) storePackage(pkg *manifest.Package, want, optional map[int]bool, id string) (stored map[int]string, err error) {
	stored = map[int]string{}
	defer func() {
		if err != nil {
			for _, p := range stored {
				os.Remove(p)
			}
		}
	}()
	if err := os.MkdirAll(a.opt.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("agent: package store: %w", err)
	}
	items := pkg.Manifest().Items
	for {
		it, pr, err := pkg.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return stored, err
		}
		i := slices.IndexFunc(items, func(x manifest.Item) bool { return x.Payload == it.Payload })
		if !want[i] && !optional[i] {
			if _, err := io.Copy(io.Discard, pr); err != nil {
				return stored, err
			}
			continue
		}
		name := fmt.Sprintf("%s.%d.payload", sanitize(id), i)
		p, err := a.storeStream(pr, name)
		if err != nil {
			return stored, err
		}
		stored[i] = p
	}
	for i := range want {
		if _, ok := stored[i]; !ok {
			return stored, fmt.Errorf("%w: %q, which this node's install path needs", manifest.ErrMissingPayload, items[i].Payload)
		}
	}
	return stored, nil
}

func (a *Agent) storeStream(r io.Reader, name string) (string, error) {
	dst := filepath.Join(a.opt.StoreDir, name)
	// The reader's io.EOF means: size and digest checked.
	err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
	if err != nil {
		return "", err
	}
	return dst, nil
}

// IsPackage reports whether the file at path starts like a signed package
// (a tar stream whose first entry is the manifest).
func IsPackage(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var hdr [512]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return false
	}
	name := hdr[:100]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name) == manifest.ManifestName && string(hdr[257:262]) == "ustar"
}

// maxJournalChecks bounds the validation results the journal keeps: the
// record is rewritten after every erase block and must stay small (a page).
const maxJournalChecks = 16

// compactChecks is what the journal keeps of a validation report: the
// details of passed checks are dropped (a failed check keeps its reason),
// and past maxJournalChecks items only those not at level 1 are kept.
func compactChecks(rs []validate.Result) []validate.Result {
	out := make([]validate.Result, 0, len(rs))
	for _, r := range rs {
		c := r
		c.Outcomes = make([]validate.Outcome, len(r.Outcomes))
		for i, o := range r.Outcomes {
			if o.Passed {
				o.Detail = ""
			}
			c.Outcomes[i] = o
		}
		out = append(out, c)
	}
	if len(out) <= maxJournalChecks {
		return out
	}
	kept := out[:0]
	for _, r := range out {
		if r.Level != validate.Continue && len(kept) < maxJournalChecks {
			kept = append(kept, r)
		}
	}
	return kept
}
