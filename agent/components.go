package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
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
// archives are dropped. A module takes no downgrade over its update
// commands unless its maker ships the way back as an update file: a modem
// item that carries one (manifest.Item.Revert) is taken back with it —
// journalled step by step like the update, resumed after a power cut —
// before the result is recorded, and the module must report its previous
// version again; a module without one stays updated and the result says
// so (docs/modem.md).

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
	// Undo: the package ends without keeping its items (a later item
	// failed, or the system set was rolled back or abandoned); the modem
	// items with a revert file are being taken back, then the result is
	// completed. Optional in the record (issue 15).
	Undo *ComponentUndo `cbor:"undo,omitempty"`
}

// ComponentUndo is why the package's items are being undone.
type ComponentUndo struct {
	// Failed is 1 + the index of the item whose failure ends the package
	// before its system set, Cause that failure; 0 when the system set
	// ended (Code, already in Record.Last).
	Failed int        `cbor:"failed,omitempty"`
	Cause  string     `cbor:"cause,omitempty"`
	Code   ResultCode `cbor:"code,omitempty"`
}

// ModemRevert is a modem item's way back: the maker's update file from
// the item's version to the one the module ran before (the manifest's
// Item.Revert), stored with the package, and how taking it went.
type ModemRevert struct {
	ID      string `cbor:"id"`
	Version string `cbor:"ver"` // the version the file installs
	Payload string `cbor:"file"`
	Size    int64  `cbor:"size"`
	// Step is the revert's last journalled step (as ComponentItem.Modem).
	Step *hw.ModemStep `cbor:"step,omitempty"`
	// Done: the module reported Version again (Same: it ran the item's
	// version before the package already; nothing was sent). Err: why
	// the module was not taken back; it keeps what it runs.
	Done bool   `cbor:"done,omitempty"`
	Same bool   `cbor:"same,omitempty"`
	Err  string `cbor:"err,omitempty"`
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
	// Revert (modem items, issue 15): the way back, when the package
	// carries one.
	Revert *ModemRevert `cbor:"revert,omitempty"`
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
		if it.Revert != nil {
			rv := *it.Revert
			if rv.Step != nil {
				st := *rv.Step
				rv.Step = &st
			}
			it.Revert = &rv
		}
		d.Items[i] = it
	}
	if c.Next != nil {
		u := *c.Next
		u.Item.Payloads = append([]string(nil), c.Next.Item.Payloads...)
		d.Next = &u
	}
	d.Checks = append([]validate.Result(nil), c.Checks...)
	if c.Undo != nil {
		u := *c.Undo
		d.Undo = &u
	}
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
	if u := c.Undo; u != nil { // a failed item's package: the module goes back first
		if err := a.revertModems(ctx); err != nil {
			return err
		}
		return a.failComponents(u.Failed-1, errors.New(u.Cause))
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
			if needsRevert(a.rec.Comp) {
				r := a.rec.clone()
				r.Comp.Undo = &ComponentUndo{Failed: i + 1, Cause: err.Error()}
				if err := a.commit(r); err != nil {
					return err
				}
				if err := a.revertModems(ctx); err != nil {
					return err
				}
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
		v, err := a.runModemUpdate(ctx, fw, st, it.Payload, func(r *Record, st hw.ModemStep) {
			r.Comp.Items[i].Modem = &st
			if st.From != "" && r.ModemVersion == "" {
				r.ModemVersion = st.From
			}
		})
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

// runModemUpdate drives one module update from st with the update file
// payload; save puts each step into the record journalled before it.
func (a *Agent) runModemUpdate(ctx context.Context, fw hw.ModemFirmware, st hw.ModemStep, payload string, save func(*Record, hw.ModemStep)) (string, error) {
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
		f, err = os.Open(payload)
		return f, err
	}
	persist := func(st hw.ModemStep) error {
		r := a.rec.clone()
		save(r, st)
		if err := a.commit(r); err != nil {
			return journalError{err}
		}
		return nil
	}
	return hw.UpdateModem(ctx, fw, st, open, persist)
}

// needsRevert reports whether an installed modem item of c still has to
// be taken back with its revert file.
func needsRevert(c *Components) bool {
	return c != nil && slices.ContainsFunc(c.Items, func(x ComponentItem) bool {
		return x.Component == manifest.ComponentModem && x.Done && x.Revert != nil && !x.Revert.Done && x.Revert.Err == ""
	})
}

// revertModems takes back, with their revert files, the installed modem
// items of the package being undone (issue 15). A journal failure or the
// end of ctx stops it (the next start resumes from the journal); any other
// failure is recorded on the item, whose module keeps what it runs.
func (a *Agent) revertModems(ctx context.Context) error {
	for i := range a.rec.Comp.Items {
		if x := a.rec.Comp.Items[i]; x.Component != manifest.ComponentModem || !x.Done || x.Revert == nil || x.Revert.Done || x.Revert.Err != "" {
			continue
		}
		if err := a.revertModem(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// revertModem installs item i's revert file and confirms that the module
// reports the version it ran before the package.
func (a *Agent) revertModem(ctx context.Context, i int) error {
	x := a.rec.Comp.Items[i]
	rv := x.Revert
	log := a.log.With(slog.String("item", x.ID), slog.String("back to", rv.Version))
	set := func(f func(*ModemRevert), ver string) error {
		r := a.rec.clone()
		f(r.Comp.Items[i].Revert)
		if ver != "" {
			r.ModemVersion = ver
		}
		if err := a.commit(r); err != nil {
			return journalError{err}
		}
		return nil
	}
	before := ""
	if x.Modem != nil {
		before = x.Modem.From
	}
	switch {
	case before == x.Version:
		// The module ran this version before the package: the update
		// only confirmed it, and there is nothing to take back.
		return set(func(v *ModemRevert) { v.Done, v.Same = true, true }, "")
	case before != rv.Version:
		// The file leads elsewhere than where the module was: sending
		// it would not restore the node as it was.
		why := fmt.Sprintf("its revert file %s installs %s, but the module ran %q before", rv.ID, rv.Version, before)
		log.Warn("radio module not taken back", slog.String("why", why))
		return set(func(v *ModemRevert) { v.Err = why }, "")
	}
	fw := a.modemFirmware()
	if fw == nil {
		return set(func(v *ModemRevert) { v.Err = "the board no longer offers its radio module" }, "")
	}
	st := hw.ModemStep{Want: rv.Version, Size: rv.Size}
	if rv.Step != nil {
		st = *rv.Step
		log.Info("radio module revert resumes", slog.String("phase", string(st.Phase)))
	} else {
		log.Info("taking the radio module back")
	}
	v, err := a.runModemUpdate(ctx, fw, st, rv.Payload, func(r *Record, st hw.ModemStep) { r.Comp.Items[i].Revert.Step = &st })
	if err != nil {
		var je journalError
		if errors.As(err, &je) || ctx.Err() != nil {
			return err
		}
		r := a.rec.clone()
		extra := a.modemAfterFailure(r)
		log.Warn("radio module not taken back", slog.Any("err", err))
		return set(func(v *ModemRevert) { v.Err = err.Error() + extra }, r.ModemVersion)
	}
	a.modemVer = v
	log.Info("radio module taken back")
	return set(func(v *ModemRevert) { v.Done = true }, v)
}

// restoreFiles puts back the file items of c (issue 15); a failure is
// reported again, per item, when the package is settled.
func (a *Agent) restoreFiles(c *Components) {
	p, ok := a.filePlace()
	if !ok {
		return
	}
	for _, x := range c.Items {
		if x.Component == manifest.ComponentFile {
			if err := p.Restore(x.ID); err != nil {
				a.log.Warn("file item not restored", slog.String("item", x.ID), slog.Any("err", err))
			}
		}
	}
}

// undoComponents ends a package whose system set did not stay (finish
// left r.Comp.Undo): the modem items go back first, then the file items
// are restored and the per-item report joins the recorded result.
func (a *Agent) undoComponents(ctx context.Context) error {
	if err := a.revertModems(ctx); err != nil {
		return err
	}
	r := a.rec.clone()
	c := r.Comp
	checks := a.settleComponents(r, c.Undo.Code)
	if l := r.Last; l != nil && l.ID == c.ID {
		l.Checks = append(slices.Clip(l.Checks), checks...)
	}
	return a.commit(r)
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
	// The validation is compacted; the per-item report (one result per
	// item, bounded by the plan) keeps what became of each item.
	checks = compactChecks(checks)
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
	r.Last = &Result{ID: c.ID, Code: Abandoned, Version: r.slot(booted).Version, Slot: booted, Reason: reason, Checks: checks}
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
		switch rv := x.Revert; {
		case rv != nil && rv.Same:
			return validate.Outcome{Check: "restore", Passed: true, Detail: "the radio module ran " + x.Version + " before this package already"}
		case rv != nil && rv.Done:
			return validate.Outcome{Check: "restore", Passed: true, Detail: "rolled back to " + rv.Version}
		case rv != nil && rv.Err != "":
			return validate.Outcome{Check: "restore", Detail: "the radio module keeps " + x.Version + ": not rolled back: " + rv.Err}
		}
		return validate.Outcome{Check: "restore", Detail: "the radio module keeps " + x.Version + ": the package has no file to take it back"}
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

// revertIndex is the index in m of the item carrying the revert file of
// modem item it, or -1 (issue 15).
func revertIndex(m *manifest.Manifest, it manifest.Item) int {
	if it.Component != manifest.ComponentModem || it.Revert == "" {
		return -1
	}
	return slices.IndexFunc(m.Items, func(x manifest.Item) bool { return x.ID == it.Revert })
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
		it := ComponentItem{ID: s.Item.ID, Component: s.Item.Component, Version: s.Item.To,
			Payload: stored[s.Index], Size: int64(s.Item.Size)}
		if ri := revertIndex(m, s.Item); ri >= 0 {
			rv := m.Items[ri]
			if p, ok := stored[ri]; ok {
				it.Revert = &ModemRevert{ID: rv.ID, Version: rv.To, Payload: p, Size: int64(rv.Size)}
			} else {
				a.log.Warn("the package came without the modem item's revert file", slog.String("item", s.Item.ID), slog.String("revert", rv.ID))
			}
		}
		c.Items = append(c.Items, it)
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
