package hw

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Errors of a module firmware update (UpdateModem). The driver package
// (boards/modem) names the same values ErrRefused, ErrUnexpectedVersion,
// ErrBadStep.
var (
	// ErrModemRefused: the module keeps coming back with its old version
	// after installing the file, or ended the install with an error.
	ErrModemRefused = errors.New("modem: module refuses the firmware")
	// ErrModemVersion: the module reports a version that is neither the
	// one it ran before nor the one wanted.
	ErrModemVersion = errors.New("modem: module reports an unexpected version")
	// ErrModemStep: the update record lacks its version or size, or names
	// an unknown phase (a journal from a newer agent).
	ErrModemStep = errors.New("modem: invalid firmware update record")
)

// ModemMaxStarts bounds the install commands of one update: a module that comes
// back with its old version after that many is taken as refusing.
const ModemMaxStarts = 2

// UpdateModem drives a module firmware update to its end from the step
// st, calling persist with the next step before it takes it (the agent
// journals it). st starts as ModemStep{Want: …, Size: …}; after a power
// cut it is the last persisted record. open returns the update file from
// its start (it is called again when the upload must be redone).
//
// It returns the version the module reported after the update, which is
// st.Want, or an error; it never reports a version the module did not
// report. Errors: ErrModemRefused (the driver's *modem.FOTAError is one; the module keeps its old
// firmware), ErrModemVersion, and the driver's own (modem.ErrNotReady,
// modem.ErrChecksum…).
func UpdateModem(ctx context.Context, fw ModemFirmware, st ModemStep, open func() (io.Reader, error), persist func(ModemStep) error) (string, error) {
	switch st.Phase {
	case ModemNew, ModemUploading, ModemUploaded, ModemStarted, ModemConfirming, ModemDone:
	default:
		return "", fmt.Errorf("%w: phase %q", ErrModemStep, st.Phase)
	}
	if st.Want == "" || st.Size <= 0 {
		return "", fmt.Errorf("%w: want %q, size %d", ErrModemStep, st.Want, st.Size)
	}
	next := func(p ModemPhase) error {
		st.Phase = p
		return persist(st)
	}
	for range 16 { // every phase moves on or returns; this bounds a bug
		switch st.Phase {
		case ModemNew:
			v, err := fw.ModemVersion(ctx)
			if err != nil {
				return "", err
			}
			st.From = v
			p := ModemUploading
			if v == st.Want {
				p = ModemConfirming
			}
			if err := next(p); err != nil {
				return "", err
			}
		case ModemUploading:
			r, err := open()
			if err != nil {
				return "", err
			}
			if err := fw.ModemUpload(ctx, r, st.Size); err != nil {
				return "", err
			}
			if err := next(ModemUploaded); err != nil {
				return "", err
			}
		case ModemUploaded:
			// A module that already runs the new firmware (it was told
			// to install before a power cut this record did not see the
			// end of, or its file was applied by other means) is not
			// told again: it would refuse, and the update is done.
			if v, err := fw.ModemVersion(ctx); err == nil && v == st.Want {
				if err := next(ModemConfirming); err != nil {
					return "", err
				}
				continue
			}
			if st.Starts >= ModemMaxStarts {
				return "", fmt.Errorf("%w: still %q after %d installs", ErrModemRefused, st.From, st.Starts)
			}
			st.Starts++
			if err := next(ModemStarted); err != nil {
				return "", err
			}
			if err := fw.ModemStart(ctx); err != nil {
				return "", err
			}
		case ModemStarted:
			if err := fw.ModemWait(ctx); err != nil {
				return "", err
			}
			v, err := fw.ModemVersion(ctx)
			if err != nil {
				return "", err
			}
			switch v {
			case st.Want:
				err = next(ModemConfirming)
			case st.From:
				// The install did not take (cut before the module had
				// the command, or while it patched): from the upload.
				if st.Starts >= ModemMaxStarts {
					return "", fmt.Errorf("%w: still %q after %d installs", ErrModemRefused, v, st.Starts)
				}
				err = next(ModemUploading)
			default:
				return "", fmt.Errorf("%w: %q, neither %q nor %q", ErrModemVersion, v, st.From, st.Want)
			}
			if err != nil {
				return "", err
			}
		case ModemConfirming:
			v, err := fw.ModemConfirm(ctx)
			if err != nil {
				return "", err
			}
			if v != st.Want {
				return "", fmt.Errorf("%w: %q after confirmation, want %q", ErrModemVersion, v, st.Want)
			}
			if err := next(ModemDone); err != nil {
				return "", err
			}
			return v, nil
		case ModemDone:
			// Confirmed before the cut: ask again, never repeat the record.
			v, err := fw.ModemVersion(ctx)
			if err != nil {
				return "", err
			}
			if v != st.Want {
				return "", fmt.Errorf("%w: %q, want %q", ErrModemVersion, v, st.Want)
			}
			return v, nil
		default:
			return "", fmt.Errorf("%w: phase %q", ErrModemStep, st.Phase)
		}
	}
	return "", fmt.Errorf("modem: update does not settle (phase %q)", st.Phase)
}
