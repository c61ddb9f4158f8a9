package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"meterupd/boards/hw"
	"meterupd/fileitem"
	"meterupd/manifest"
	"meterupd/validate"
)

// The other components of a package (issue 15): the radio module's
// firmware and file items. They install before the package's system set,
// in the order of the plan (the order its prerequisites demand), each
// journalled before every step:
//
//   - a modem firmware item goes to the module through the board's
//     hw.ModemFirmwareBoard capability, driven by hw.UpdateModem, which
//     records its hw.ModemStep here before each step and, after a power
//     cut, resumes from it and from what the module reports;
//   - a file item is written by package fileitem into the board's declared
//     place (hw.FileItemBoard), its old content archived first.
//
// All or none: when an item fails, the file items already written are
// restored and nothing else is installed (the result, abandoned, reports
// every item). When the system set that follows is rolled back (or its
// install abandoned), the file items are restored too; committed, their
// archives are dropped. A module's firmware is never rolled back by the
// agent: a module takes no downgrade over its update commands unless its
// maker ships the old firmware as an update file, so a module that
// updated stays updated and the result says so (docs/modem.md).

// Components is the modem firmware and file items of the package being
// installed. Optional in the record (see Record.Comp).
type Components struct {
	ID    string          `cbor:"id"`
	Seq   uint64          `cbor:"seq,omitempty"`
	Keys  []byte          `cbor:"keys,omitempty"`
	Items []ComponentItem `cbor:"items"`
	// Next is the package's system set, accepted (phase downloaded) once
	// every item is in; nil when the package has none.
	Next *Update `cbor:"next,omitempty"`
	// In: every item is installed. The file items wait for the outcome of
	// the system set (Next, now Record.Update): kept or restored.
	In bool `cbor:"in,omitempty"`
	// Checks are the package's validation results.
	Checks []validate.Result `cbor:"checks,omitempty"`
}

// ComponentItem is one modem firmware or file item to install.
type ComponentItem struct {
	ID        string             `cbor:"id"`
	Component manifest.Component `cbor:"comp"`
	Version   string             `cbor:"ver"`
	// Payload is the item's file in the package store; Size its length.
	Payload string `cbor:"file"`
	Size    int64  `cbor:"size"`
	// Modem is the module update's last journalled step.
	Modem *hw.ModemStep `cbor:"modem,omitempty"`
	// Started (file items): an archive in the place is this update's.
	Started bool `cbor:"started,omitempty"`
	Done    bool `cbor:"done,omitempty"`
}

func (c *Components) clone() *Components {
	if c == nil {
		return nil
	}
	d := *c
	d.Items = make([]ComponentItem, len(c.Items))
	for i, it := range c.Items {
		if it.Modem != nil {
			st := *it.Modem
			it.Modem = &st
		}
		d.Items[i] = it
	}
	if c.Next != nil {
		u := *c.Next
		u.Item.Payloads = append([]string(nil), c.Next.Item.Payloads...)
		d.Next = &u
	}
	d.Checks = append([]validate.Result(nil), c.Checks...)
	return &d
}

// ErrComponentOrder refuses a plan the agent could not carry out in one
// pass: a modem firmware or file item that requires the system set this
// same package installs (the system set is installed last: it needs a
// reboot and a trial).
var ErrComponentOrder = errors.New("agent: a component requires the package's own system set")

// ErrIrreversible refuses a package whose plan installs something after
// a modem firmware item the manifest marks irreversible: if that later
// item failed (or its system set were rolled back), the module could not
// be brought back to match. Such firmware is sent alone.
var ErrIrreversible = errors.New("agent: an irreversible modem firmware must be installed alone")

// irreversibleFirst refuses a plan with anything after an irreversible
// component item (the system set comes after every component).
func irreversibleFirst(comps, steps []manifest.Step) error {
	for i, s := range comps {
		if s.Item.Irreversible && (i < len(comps)-1 || len(steps) > 0) {
			return fmt.Errorf("%w: %s is followed by other items of the package", ErrIrreversible, s.Item.ID)
		}
	}
	return nil
}

// modemFirmware is the board's updatable radio module, or nil.
func (a *Agent) modemFirmware() hw.ModemFirmware {
	if mb, ok := a.b.(hw.ModemFirmwareBoard); ok {
		return mb.ModemFirmware()
	}
	return nil
}

// filePlace is the board's declared place for file items.
func (a *Agent) filePlace() (fileitem.Place, bool) {
	fb, ok := a.b.(hw.FileItemBoard)
	if !ok {
		return fileitem.Place{}, false
	}
	dir, max := fb.FileItems()
	return fileitem.Place{Dir: dir, MaxSize: max}, dir != ""
}

// modemAskTimeout bounds asking the module its version for a request or a
// package's selection; a module that does not answer within it (starting,
// absent) leaves the journalled version.
const modemAskTimeout = 10 * time.Second

// RefreshModem asks the board's updatable module, if it has one, its
// firmware version (bounded), so that status shows it as the module last
// told it. Nothing is journalled.
func (a *Agent) RefreshModem(ctx context.Context) { a.refreshModem(ctx) }

// refreshModem asks the module its firmware version, for selection and
// requests. The answer is kept in memory only (a refused package changes
// nothing in the journal); a module that does not answer leaves the last
// known version.
func (a *Agent) refreshModem(ctx context.Context) {
	fw := a.modemFirmware()
	if fw == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, modemAskTimeout)
	defer cancel()
	v, err := fw.ModemVersion(ctx)
	if err != nil {
		a.log.Warn("radio module does not tell its firmware version", slog.Any("err", err))
		return
	}
	a.modemVer = v
}

// componentVersions adds the versions of the other components to the
// installed versions: the module's as last reported, the file items'.
func (a *Agent) componentVersions(inst map[manifest.Component]string) {
	if v := a.modemVer; v != "" {
		inst[manifest.ComponentModem] = v
	} else if a.rec.ModemVersion != "" {
		inst[manifest.ComponentModem] = a.rec.ModemVersion
	}
	if a.rec.FilesVersion != "" {
		inst[manifest.ComponentFile] = a.rec.FilesVersion
	}
}

// componentSkip says why this node cannot install a non-system step ("" if
// it can); a file item whose name is not a plain file name refuses the
// package.
func (a *Agent) componentSkip(s manifest.Step) (string, error) {
	switch s.Item.Component {
	case manifest.ComponentModem:
		if a.modemFirmware() == nil {
			return "this board has no updatable radio module", nil
		}
	case manifest.ComponentFile:
		p, ok := a.filePlace()
		if !ok {
			return "this board declares no place for file items", nil
		}
		if err := fileitem.ValidName(s.Item.ID); err != nil {
			return "", fmt.Errorf("%w: file item %q", err, s.Item.ID)
		}
		limit := p.MaxSize
		if limit <= 0 {
			limit = fileitem.DefaultMaxSize
		}
		if s.Item.Size > uint64(limit) {
			// Refused before the module or any file is touched.
			return "", fmt.Errorf("%w: file item %q is %d bytes, its place takes %d", fileitem.ErrTooLarge, s.Item.ID, s.Item.Size, limit)
		}
	default:
		return "no installer for component " + s.Item.Component.String(), nil
	}
	return "", nil
}

// componentOrder refuses a component step that requires a system set
// version beyond the running one: only this package's system set, which
// comes last, could provide it.
func componentOrder(comps []manifest.Step, running string) error {
	for _, s := range comps {
		for _, p := range s.Item.Prereqs {
			if p.Component == manifest.ComponentSystem && p.Version != "" && manifest.CompareVersions(running, p.Version) < 0 {
				return fmt.Errorf("%w: %s requires system set %s (running %s): send it in a second package", ErrComponentOrder, s.Item.ID, p.Version, running)
			}
		}
	}
	return nil
}

// journalError is a failed journal commit inside a component install: the
// node cannot record anything, so nothing is decided (the next start
// resumes from the journal).
type journalError struct{ err error }

func (e journalError) Error() string { return e.err.Error() }
func (e journalError) Unwrap() error { return e.err }

// runComponents installs the pending component items, then hands over to
// the package's system set (or finishes the package). It is where an
// install resumes after a power cut (Start).
func (a *Agent) runComponents(ctx context.Context) error {
	c := a.rec.Comp
	if c == nil || c.In {
		return nil
	}
	for i := range c.Items {
		if a.rec.Comp.Items[i].Done {
			continue
		}
		if err := a.installComponent(ctx, i); err != nil {
			var je journalError
			if errors.As(err, &je) || ctx.Err() != nil {
				return err
			}
			return a.failComponents(i, err)
		}
	}
	r := a.rec.clone()
	r.Comp.In = true
	if r.Comp.Next == nil {
		id := r.Comp.ID
		r.Last = &Result{ID: id, Code: Committed, Reason: "components installed", Checks: r.Comp.Checks}
		r.Floor = max(r.Floor, r.Comp.Seq)
		if r.Comp.Keys != nil {
			r.Keys = r.Comp.Keys
		}
		booted, err := a.booted()
		if err != nil {
			return err
		}
		r.Last.Version, r.Last.Slot = r.slot(booted).Version, booted
		r.Last.Checks = append(r.Last.Checks, a.settleComponents(r, Committed)...)
		if err := a.commit(r); err != nil {
			return err
		}
		a.cleanStore()
		return nil
	}
	r.Update, r.Comp.Next = r.Comp.Next, nil
	if err := a.commit(r); err != nil {
		return err
	}
	id := r.Update.ID
	if err := a.drive(ctx); err != nil {
		return err
	}
	if l := a.rec.Last; a.rec.Update == nil && l != nil && l.ID == id && l.Code == Abandoned {
		return fmt.Errorf("%w: %s", ErrAbandoned, l.Reason)
	}
	return nil
}

// installComponent installs item i, journalling each step.
func (a *Agent) installComponent(ctx context.Context, i int) error {
	it := a.rec.Comp.Items[i]
	log := a.log.With(slog.String("item", it.ID), slog.String("version", it.Version))
	var ver string
	switch it.Component {
	case manifest.ComponentModem:
		fw := a.modemFirmware()
		if fw == nil {
			return errors.New("the board no longer offers its radio module")
		}
		st := hw.ModemStep{Want: it.Version, Size: it.Size}
		if it.Modem != nil {
			st = *it.Modem
			log.Info("radio module update resumes", slog.String("phase", string(st.Phase)))
		}
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		open := func() (io.Reader, error) {
			if f != nil {
				f.Close()
			}
			var err error
			f, err = os.Open(it.Payload)
			return f, err
		}
		persist := func(st hw.ModemStep) error {
			r := a.rec.clone()
			r.Comp.Items[i].Modem = &st
			if st.From != "" && r.ModemVersion == "" {
				r.ModemVersion = st.From
			}
			if err := a.commit(r); err != nil {
				return journalError{err}
			}
			return nil
		}
		v, err := hw.UpdateModem(ctx, fw, st, open, persist)
		if err != nil {
			return err
		}
		ver = v
		a.modemVer = v
	case manifest.ComponentFile:
		p, ok := a.filePlace()
		if !ok {
			return errors.New("the board no longer declares a place for file items")
		}
		if !it.Started {
			// An archive left by an update this agent did not finish (an
			// older agent took over and lost the record) is not this
			// update's: drop it, then record that from now on it is.
			if err := p.Commit(it.ID); err != nil {
				return err
			}
			r := a.rec.clone()
			r.Comp.Items[i].Started = true
			if err := a.commit(r); err != nil {
				return journalError{err}
			}
		}
		f, err := os.Open(it.Payload)
		if err != nil {
			return err
		}
		err = p.Install(it.ID, f, it.Size)
		f.Close()
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("no installer for component %s", it.Component)
	}
	r := a.rec.clone()
	r.Comp.Items[i].Done = true
	if ver != "" {
		r.ModemVersion = ver
	}
	if err := a.commit(r); err != nil {
		return journalError{err}
	}
	log.Info("component installed", slog.String("component", it.Component.String()))
	return nil
}

// failComponents ends the package after item i failed: the file items
// written are restored, nothing else is installed, the result reports
// every item.
func (a *Agent) failComponents(i int, cause error) error {
	r := a.rec.clone()
	c := r.Comp
	it := c.Items[i]
	extra := ""
	if it.Component == manifest.ComponentModem {
		extra = a.modemAfterFailure(r)
	}
	reason := fmt.Sprintf("item %s (%s): %v%s", it.ID, it.Component, cause, extra)
	a.log.Warn("component failed, package abandoned", slog.String("item", it.ID), slog.Any("err", cause))
	checks := append([]validate.Result(nil), c.Checks...)
	if c.Next != nil {
		checks = append(checks, c.Next.Checks...)
	}
	for j, x := range c.Items {
		var o validate.Outcome
		switch {
		case j == i:
			o = validate.Outcome{Check: "install", Detail: cause.Error() + extra}
		case !x.Done:
			o = validate.Outcome{Check: "install", Detail: "not installed: " + it.ID + " failed"}
		default:
			o = a.undoOutcome(x)
		}
		checks = append(checks, validate.Result{Item: x.ID, Level: validate.Skip, Outcomes: []validate.Outcome{o}})
	}
	booted, err := a.booted()
	if err != nil {
		return err
	}
	r.Last = &Result{ID: c.ID, Code: Abandoned, Version: r.slot(booted).Version, Slot: booted, Reason: reason, Checks: compactChecks(checks)}
	r.Comp = nil
	if err := a.commit(r); err != nil {
		return err
	}
	a.cleanStore()
	return fmt.Errorf("%w: %s", ErrAbandoned, reason)
}

// modemAfterFailure asks the module what it runs after a failed update,
// so that the result tells the truth; it records the answer.
func (a *Agent) modemAfterFailure(r *Record) string {
	fw := a.modemFirmware()
	if fw == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), modemAskTimeout)
	defer cancel()
	v, err := fw.ModemVersion(ctx)
	if err != nil {
		return fmt.Sprintf("; the module does not answer (%v)", err)
	}
	r.ModemVersion, a.modemVer = v, v
	return "; the module runs " + v
}

// undoOutcome rolls back one installed item where that can be done and
// says what became of it.
func (a *Agent) undoOutcome(x ComponentItem) validate.Outcome {
	switch x.Component {
	case manifest.ComponentFile:
		p, _ := a.filePlace()
		if err := p.Restore(x.ID); err != nil {
			return validate.Outcome{Check: "restore", Detail: err.Error()}
		}
		return validate.Outcome{Check: "restore", Passed: true, Detail: "restored"}
	case manifest.ComponentModem:
		return validate.Outcome{Check: "restore", Detail: "the radio module keeps " + x.Version + ": module firmware is not rolled back"}
	}
	return validate.Outcome{Check: "restore"}
}

// settleComponents ends the components of the update in r with its
// outcome: committed, the file items' archives are dropped; otherwise the
// file items are restored. Each step is idempotent: repeated when a power
// cut comes before the record that follows. It clears r.Comp and returns
// the per-item report.
func (a *Agent) settleComponents(r *Record, code ResultCode) []validate.Result {
	c := r.Comp
	if c == nil || !c.In {
		return nil
	}
	var out []validate.Result
	for _, x := range c.Items {
		o := validate.Outcome{Check: "install", Passed: true, Detail: x.Component.String() + " " + x.Version + " installed"}
		if code != Committed {
			o = a.undoOutcome(x)
		} else if x.Component == manifest.ComponentFile {
			p, _ := a.filePlace()
			if err := p.Commit(x.ID); err != nil {
				a.log.Warn("file item archive not dropped", slog.String("item", x.ID), slog.Any("err", err))
			}
			r.FilesVersion = x.Version
		}
		out = append(out, validate.Result{Item: x.ID, Level: validate.Continue, Outcomes: []validate.Outcome{o}})
	}
	r.Comp = nil
	return out
}

// acceptComponents journals a package with modem firmware or file items
// (and perhaps a system set after them) and installs it.
func (a *Agent) acceptComponents(ctx context.Context, m *manifest.Manifest, id string, comps, steps []manifest.Step,
	stored map[int]string, keysPEM []byte, checks []validate.Result, opt InstallRequest) error {
	drop := func() {
		for _, p := range stored {
			os.Remove(p)
		}
	}
	c := &Components{ID: id, Seq: m.Sequence, Keys: keysPEM}
	if len(steps) == 0 {
		c.Checks = checks // else the system set's update carries them (the record stays small)
	}
	for _, s := range comps {
		c.Items = append(c.Items, ComponentItem{ID: s.Item.ID, Component: s.Item.Component, Version: s.Item.To,
			Payload: stored[s.Index], Size: int64(s.Item.Size)})
	}
	if len(steps) > 0 {
		item, err := installItem(steps, stored)
		if err == nil {
			err = a.prepare(&item)
		}
		if err != nil {
			drop()
			return &PackageError{Err: err, Checks: checks}
		}
		u, err := a.newUpdate(InstallRequest{ID: id, Origin: opt.Origin, Item: item, Activate: opt.Activate}, func(u *Update) {
			u.Seq, u.Keys, u.Checks = m.Sequence, keysPEM, checks
		})
		if err != nil {
			drop()
			return err
		}
		c.Next = u
	}
	vals := make([]string, 0, len(stored))
	for _, p := range stored {
		vals = append(vals, p)
	}
	if err := a.endTrial(ctx, vals); err != nil {
		return err
	}
	r := a.rec.clone()
	r.Comp = c
	if a.modemVer != "" {
		// What the module reported for the selection: a modem item it
		// already satisfies is not in the plan, and is recorded here.
		r.ModemVersion = a.modemVer
	}
	a.log.Info("package accepted", slog.Uint64("sequence", m.Sequence), slog.Int("components", len(comps)), slog.Int("steps", len(steps)))
	if err := a.commit(r); err != nil {
		return err
	}
	return a.runComponents(ctx)
}
