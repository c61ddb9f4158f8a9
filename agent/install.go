package agent

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
	"strings"
	"time"

	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/internal/atomicfile"
	"meterupd/slots"
)

// InstallRequest asks for one system-set item to be installed. Today the
// CLI builds it from a bare image and its digest; the signed-package path
// builds it from a verified manifest. Either way the payload files are
// copied into the package store and checked there, so what is verified is
// exactly what is installed.
type InstallRequest struct {
	ID   string
	Item InstallItem
	// Activate reboots into the trial as soon as the set is installed.
	Activate bool
	// CommitTrial confirms a running trial first (its health checks must
	// pass) instead of refusing with ErrTrialRunning: the new install
	// then writes over the previous set, on purpose.
	CommitTrial bool
	// ActivateAt, when set, schedules the activation at that time (UTC)
	// instead; Activate is then ignored (schedule.go).
	ActivateAt time.Time
	// MaxDefer bounds the deferral of the activation by vetoes (0: the
	// agent's default); Force activates without asking (veto.go).
	MaxDefer time.Duration
	Force    bool
	// Origin is the technician (token subject) who asked over the
	// console, named in the legal audit trail; empty for a head-end job
	// or a local command.
	Origin string
}

// Install accepts an update, writes the idle slot, verifies it and, when
// asked, activates it (which reboots: on the sim board Install then
// returns hw.ErrRebooted). Bad input is refused before anything changes.
func (a *Agent) Install(ctx context.Context, req InstallRequest) error {
	if err := a.checkRequest(req); err != nil {
		return err
	}
	if err := a.idleFor(req.CommitTrial); err != nil {
		return err
	}
	it := &req.Item
	if it.Kind == FullImage && len(it.Payloads) == 1 {
		st, err := os.Stat(it.Payloads[0])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if it.Size == 0 {
			it.Size = st.Size()
		}
		if st.Size() != it.Size {
			return fmt.Errorf("%w: the image has %d bytes, the request says %d", ErrBadRequest, st.Size(), it.Size)
		}
	}
	if err := a.prepare(it); err != nil {
		return err
	}
	if req.ID == "" {
		req.ID = "local-" + it.SHA256[:12]
	}
	stored := make([]string, len(it.Payloads))
	for i, p := range it.Payloads {
		var sum string
		var err error
		stored[i], sum, err = a.storePayload(ctx, p, req.ID, i)
		if err != nil {
			return err
		}
		if it.Kind == FullImage && sum != it.SHA256 {
			os.Remove(stored[i])
			return fmt.Errorf("%w: the image's SHA-256 is %s, expected %s", ErrDigest, sum, it.SHA256)
		}
	}
	it.Payloads = stored
	if err := a.endTrial(ctx, stored); err != nil {
		return err
	}
	return a.accept(ctx, req, nil)
}

// idleFor checks, changing nothing, that a new update may begin: no update
// in progress, and in particular no trial — unless commitTrial, when the
// trial is committed (endTrial) once the request has passed every check.
func (a *Agent) idleFor(commitTrial bool) error {
	u := a.rec.Update
	if c := a.rec.Comp; c != nil && c.Undo != nil { // issue 15
		return fmt.Errorf("%w (%s, taking the radio module back)", ErrBusy, c.ID)
	}
	if c := a.rec.Comp; c != nil && !c.In {
		return fmt.Errorf("%w (%s, installing its components)", ErrBusy, c.ID)
	}
	switch {
	case u == nil:
		return nil
	case u.Phase == Activating || u.Phase == Trial:
		if commitTrial {
			return nil
		}
		return fmt.Errorf("%w (%s, version %s in %s)", ErrTrialRunning, u.ID, u.Item.Version, u.Target)
	}
	return fmt.Errorf("%w (%s, phase %s): wait for it to finish, or roll it back", ErrBusy, u.ID, u.Phase)
}

// endTrial commits the running trial, if there is one, for an install
// that asked for it (InstallRequest.CommitTrial): its set must run and
// pass its health checks. Journal only; the boot order follows at the
// install's first step. stored are the request's payloads, removed when
// the trial cannot be committed (the request then changes nothing).
func (a *Agent) endTrial(ctx context.Context, stored []string) error {
	u := a.rec.Update
	if u == nil {
		return nil
	}
	err := a.checkTrial(ctx)
	if err == nil {
		err = a.commitTrial(a.rec.clone())
	}
	if err != nil {
		for _, p := range stored {
			os.Remove(p)
		}
		return fmt.Errorf("agent: the trial was not committed, nothing installed: %w", err)
	}
	return nil
}

// prepare checks an install item against the node before anything is
// stored or written: its fields, that it fits the idle slot, and that a
// delta applies to the running set. It fills in what it derives.
func (a *Agent) prepare(it *InstallItem) error {
	if it.Kind != FullImage && it.Kind != Delta {
		return fmt.Errorf("%w: unknown item kind %q", ErrBadRequest, it.Kind)
	}
	want, err := hex.DecodeString(it.SHA256)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: the expected SHA-256 must be 64 hex digits", ErrBadRequest)
	}
	it.SHA256 = strings.ToLower(it.SHA256)
	if it.Version == "" || len(it.Version) > 64 {
		return fmt.Errorf("%w: a version of 1 to 64 characters is required", ErrBadRequest)
	}
	if len(it.Payloads) == 0 || it.Kind == FullImage && len(it.Payloads) != 1 {
		return fmt.Errorf("%w: %d payload files for a %s item", ErrBadRequest, len(it.Payloads), it.Kind)
	}
	booted, err := a.booted()
	if err != nil {
		return err
	}
	target := slots.IdleSlot(booted, a.rec.stateOf)
	f, err := a.b.Slot(target)
	if err != nil {
		return fmt.Errorf("agent: slot %s: %w", target, err)
	}
	if it.Kind == Delta && it.Size == 0 {
		it.Size = f.Size() // the patch declares the size; the slot bounds it
	}
	if it.Size <= 0 || it.Size > f.Size() {
		return fmt.Errorf("%w: %d bytes, slot %s holds %d", ErrTooLarge, it.Size, target, f.Size())
	}
	if it.Kind != Delta {
		return nil
	}
	if it.SourceSize == 0 {
		it.SourceSize = a.rec.slot(booted).Size
	}
	if it.SourceSHA256 != "" {
		// A delta applies to one exact source: the running set.
		src, err := a.b.Slot(booted)
		if err != nil {
			return err
		}
		sum, err := slots.Hash(src, it.SourceSize)
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(sum[:]); got != strings.ToLower(it.SourceSHA256) {
			return fmt.Errorf("%w: the delta was made from a set with SHA-256 %s, the running set %s has %s", ErrDigest, it.SourceSHA256, booted, got)
		}
	}
	return nil
}

// accept records the update in the journal (phase downloaded) and drives
// it. mutate, if set, adds what the carrier knows (package sequence…).
func (a *Agent) accept(ctx context.Context, req InstallRequest, mutate func(*Update)) error {
	u, err := a.newUpdate(req, mutate)
	if err != nil {
		return err
	}
	r := a.rec.clone()
	r.Update = u
	if u.Seq != 0 {
		if err := a.appendLegal(u, audit.KindVerified, identity(r, u.From), itemIdentity(u), fmt.Sprintf("signed package, sequence %d", u.Seq)); err != nil {
			return err
		}
	}
	if err := a.commit(r); err != nil {
		return err
	}
	if err := a.drive(ctx); err != nil {
		return err
	}
	if l := a.rec.Last; a.rec.Update == nil && l != nil && l.ID == req.ID && l.Code == Abandoned {
		return fmt.Errorf("%w: %s", ErrAbandoned, l.Reason)
	}
	return nil
}

// newUpdate is the update record of req, phase downloaded, to the idle
// slot.
func (a *Agent) newUpdate(req InstallRequest, mutate func(*Update)) (*Update, error) {
	booted, err := a.booted()
	if err != nil {
		return nil, err
	}
	it := req.Item
	target := slots.IdleSlot(booted, a.rec.stateOf)
	u := &Update{ID: req.ID, Phase: Downloaded, Target: target, From: booted, Item: it, Activate: req.Activate}
	u.Origin = req.Origin
	scheduleOn(u, req.ActivateAt)
	u.MaxDefer, u.Force = int64(req.MaxDefer/time.Second), req.Force
	if mutate != nil {
		mutate(u)
	}
	a.log.Info("update accepted", slog.String("update", req.ID), slog.String("version", it.Version), slog.String("target", string(target)))
	return u, nil
}

// storePayload copies a payload into the package store (temp, fsync,
// rename, fsync the directory: it survives a power cut) and returns its
// path there and its SHA-256. A file already in the store is only hashed.
func (a *Agent) storePayload(ctx context.Context, path, id string, i int) (string, string, error) {
	if a.opt.StoreDir == "" {
		return "", "", fmt.Errorf("agent: no package store configured")
	}
	if err := os.MkdirAll(a.opt.StoreDir, 0o755); err != nil {
		return "", "", fmt.Errorf("agent: package store: %w", err)
	}
	in, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	defer in.Close()
	h := sha256.New()
	if filepath.Dir(filepath.Clean(path)) == filepath.Clean(a.opt.StoreDir) {
		if _, err := io.Copy(h, in); err != nil {
			return "", "", fmt.Errorf("agent: read %s: %w", path, err)
		}
		return path, hex.EncodeToString(h.Sum(nil)), nil
	}
	name := fmt.Sprintf("%s.%d.payload", sanitize(id), i)
	dst := filepath.Join(a.opt.StoreDir, name)
	err = atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(a.pacedWriter(ctx, io.MultiWriter(w, h)), in)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("agent: copy %s into the package store: %w", path, err)
	}
	return dst, hex.EncodeToString(h.Sum(nil)), nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// install writes the idle slot from Update.Written on, one erase block at
// a time, each read back, and checkpoints progress in the journal after
// every block: a power cut costs at most the block in progress, and no
// verified block is ever written again. Then it hashes the whole image in
// flash and compares it with the item's digest.
func (a *Agent) install(ctx context.Context, r *Record) error {
	u := r.Update
	f, err := a.b.Slot(u.Target)
	if err != nil {
		return fmt.Errorf("agent: slot %s: %w", u.Target, err)
	}
	f = a.pacedFlash(ctx, f) // delta apply and block writes
	if u.Item.Kind == Delta {
		return a.installDelta(ctx, r, f)
	}
	src, err := os.Open(u.Item.Payloads[0])
	if err != nil {
		return a.abandon(r, fmt.Sprintf("the payload cannot be read from the package store: %v", err))
	}
	defer src.Close()
	es := f.EraseSize()
	size := u.Item.Size
	blocks := (size + es - 1) / es
	buf := make([]byte, es)
	for i := u.Written / es; i < blocks; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(es, size-i*es)
		if _, err := src.ReadAt(buf[:n], i*es); err != nil {
			return a.abandon(r, fmt.Sprintf("the payload cannot be read from the package store: %v", err))
		}
		if err := a.writeBlock(f, i, buf[:n]); err != nil {
			if a.fatalFlash(err) {
				return a.abandon(r, fmt.Sprintf("writing slot %s failed at block %d: %v", u.Target, i, err))
			}
			return err
		}
		next := a.rec.clone()
		next.Update.Written = min((i+1)*es, size)
		if err := a.commit(next); err != nil {
			return err
		}
		r = next
		u = r.Update
	}
	return a.verifyInstalled(ctx, r, f)
}

// verifyInstalled hashes the image in flash and compares it with the
// item's digest: what is armed is what was verified, read back from the
// slot itself.
func (a *Agent) verifyInstalled(ctx context.Context, r *Record, f hw.Flash) error {
	u := r.Update
	size := u.Item.Size
	sum, err := a.hashSlot(ctx, f, size)
	if err != nil {
		return err
	}
	got := hex.EncodeToString(sum[:])
	if got != u.Item.SHA256 {
		return a.abandon(r, fmt.Sprintf("the image written to slot %s has SHA-256 %s, expected %s", u.Target, got, u.Item.SHA256))
	}
	if err := transition(r, u.Target, slots.Verify); err != nil {
		return err
	}
	*r.slot(u.Target) = SlotInfo{State: slots.Ready, Version: u.Item.Version, SHA256: u.Item.SHA256, Size: size}
	u.Phase = Installed
	a.log.Info("installed", slog.String("slot", string(u.Target)), slog.String("version", u.Item.Version))
	return a.commit(r)
}

// writeBlock writes one block, retrying once a block that failed for a
// reason other than the flash refusing for good.
func (a *Agent) writeBlock(f hw.Flash, i int64, p []byte) error {
	err := slots.WriteBlock(f, i, p)
	if err == nil || errors.Is(err, hw.ErrBadBlock) {
		return err
	}
	if err2 := slots.WriteBlock(f, i, p); err2 != nil {
		return err2
	}
	return nil
}

// fatalFlash reports whether a flash error means the slot cannot be
// written (the update is abandoned) rather than that the node lost power
// or the operation may be retried at the next start.
func (a *Agent) fatalFlash(err error) bool {
	return errors.Is(err, hw.ErrBadBlock) || errors.Is(err, slots.ErrVerify) || errors.Is(err, slots.ErrTooLarge)
}

// cleanStore removes, at rest, the payloads and temporary files this agent
// left in the package store (a finished update's, or those of a request a
// power cut interrupted before it reached the journal): over 15 years the
// store must not fill up. Files of other names are not ours and stay.
func (a *Agent) cleanStore() {
	if a.opt.StoreDir == "" || a.rec.Update != nil || a.rec.Comp != nil {
		return
	}
	ents, err := os.ReadDir(a.opt.StoreDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".payload") || strings.Contains(n, ".payload.tmp")) {
			if err := os.Remove(filepath.Join(a.opt.StoreDir, n)); err != nil {
				a.log.Warn("package store: cannot remove", slog.String("file", n), slog.Any("err", err))
			}
		}
	}
}
