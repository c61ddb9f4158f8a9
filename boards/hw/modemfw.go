package hw

import (
	"context"
	"io"
)

// ModemFirmware is a radio module whose firmware the agent updates over
// the module's own AT port, in the module maker's dialect (Quectel DFOTA,
// u-blox FOAT). A board that has one returns it from a method found by type
// assertion on the Board:
//
//	type ModemFirmwareBoard interface{ ModemFirmware() ModemFirmware }
//
// The steps are the ones the agent journals (ModemStep): the module takes
// minutes, restarts, and may lose power with the meter at any point, so the
// agent records the step before it takes it and, after a power cut, asks
// the module where it stands (ModemVersion, ModemWait) rather than trusting
// the record alone. No method reports a version the module did not report.
type ModemFirmware interface {
	// ModemVersion reports the firmware revision the module reports now.
	// It waits (bounded) for a module that is still starting.
	ModemVersion(ctx context.Context) (string, error)
	// ModemUpload stores size bytes from image in the module's file
	// system as the update file, replacing any earlier (or partial)
	// upload, and checks the module's account of what it received.
	ModemUpload(ctx context.Context, image io.Reader, size int64) error
	// ModemStart tells the module to install the uploaded file. The module
	// then restarts on its own; its port may vanish and come back.
	ModemStart(ctx context.Context) error
	// ModemWait waits until the module has finished installing and
	// answers again, or reports why it will not (the module refused the
	// file, it never came back). It may be called after a power cut with
	// no ModemStart before it in this process.
	ModemWait(ctx context.Context) error
	// ModemConfirm sets the module up again after its update (a module
	// that comes back with factory settings is re-provisioned from the
	// board's configuration) and reports the revision it runs.
	ModemConfirm(ctx context.Context) (string, error)
}

// ModemFirmwareBoard is the optional capability of a Board with a radio
// module whose firmware can be updated.
type ModemFirmwareBoard interface {
	ModemFirmware() ModemFirmware
}

// ModemPhase is where a modem firmware update stands. The values are
// stored in the journal: never rename one.
type ModemPhase string

const (
	// ModemNew: nothing done yet; the module's version is read first.
	ModemNew ModemPhase = ""
	// ModemUploading: the upload may be under way; after a power cut it
	// is done again from the start (the module's partial file is removed).
	ModemUploading ModemPhase = "uploading"
	// ModemUploaded: the module holds the whole file, checked.
	ModemUploaded ModemPhase = "uploaded"
	// ModemStarted: the install command may have reached the module;
	// after a power cut the agent waits for it and reads its version.
	ModemStarted ModemPhase = "started"
	// ModemConfirming: the module reported the wanted version; it is set
	// up again and the version confirmed.
	ModemConfirming ModemPhase = "confirming"
	// ModemDone: the module runs the wanted version, confirmed.
	ModemDone ModemPhase = "done"
)

// ModemStep is the record of one modem firmware update that the agent
// journals before each step. Fields are only ever added.
type ModemStep struct {
	Phase ModemPhase `json:"phase"`
	// Want is the version the package promises; From the version the
	// module ran before (set at the first step).
	Want string `json:"want"`
	From string `json:"from,omitempty"`
	// Size is the update file's size in bytes.
	Size int64 `json:"size"`
	// Starts counts install commands given, to bound retries of a module
	// that keeps coming back with its old version.
	Starts int `json:"starts,omitempty"`
}
