package agent

import (
	"meterupd/boards/hw"
	"meterupd/slots"
	"meterupd/validate"
)

// RecordVersion is the version of Record this code writes. It is frozen at
// 1: every released agent refuses a record with a higher one, so bumping
// it would strand a node rolled back onto an older set. The compatibility
// rule (docs/journal.md) extends the layout instead: new facts are new
// optional keys that older agents ignore and may lose; Phase, slots.State
// and hw.Slot never take a value an older agent does not know.
const RecordVersion = 1

// Record is the agent's whole persisted state: one journal record. Field
// names are stored (CBOR keys): never rename one, never change its type;
// add optional fields with omitempty, safe to lose (docs/journal.md).
type Record struct {
	Version int                   `cbor:"v"`
	Slots   map[hw.Slot]*SlotInfo `cbor:"slots"`
	// Primary is the slot the node should run: the last committed set (or F
	// when both updatable sets have failed).
	Primary hw.Slot `cbor:"primary"`
	// Update is the update in progress; nil when idle.
	Update *Update `cbor:"update,omitempty"`
	// Last is the result of the last update or rollback.
	Last *Result `cbor:"last,omitempty"`
	// Floor is the highest package sequence number consumed: a package
	// must carry a greater one (anti-rollback, independent of the clock).
	Floor uint64 `cbor:"floor,omitempty"`
	// Keys is the trusted keyring (PEM) once a signed key update has
	// changed it; empty means the keyring the node was provisioned with.
	Keys []byte `cbor:"keys,omitempty"`
	// BootRepairs counts the boot orders rewritten from the journal since
	// the node last rested on its primary (a lost boot state; see
	// repairBoot). Optional, safe to lose: an older agent drops it and
	// at worst one more repair is tried.
	BootRepairs int `cbor:"bootfix,omitempty"`

	// Issue 15, the other components of a package (optional, safe to
	// lose: an older agent ignores them; the module and the files are
	// then left as they are, each whole, and the module reports its own
	// version). Comp is the modem firmware and file items of the package
	// being installed; ModemVersion the module's firmware version as last
	// reported; FilesVersion the version of the last committed file items.
	Comp         *Components `cbor:"comp,omitempty"`
	ModemVersion string      `cbor:"modemver,omitempty"`
	FilesVersion string      `cbor:"filesver,omitempty"`
	// Issue 12 (technician console). Console is the console's login
	// guard: failures in a row and the lockout they led to. Optional: an
	// older agent drops it, which at worst ends a lockout early.
	Console *ConsoleGuard `cbor:"console,omitempty"`
	// Link is what the head-end link persists (issue 10, docs/mqtt.md).
	// Optional, safe to lose: an older agent drops it, and the link then
	// acts once more on the retained desired document, which the package's
	// signed sequence number makes harmless.
	Link *LinkFacts `cbor:"link,omitempty"`
}

// LinkFacts are the head-end link's persisted facts: the desired
// document's gate (the replica's epoch and the highest version acted on in
// it), the job that document named, and the next free report sequence
// number (reserved in ranges, so a report costs no journal commit).
type LinkFacts struct {
	Epoch   uint64 `cbor:"epoch" json:"epoch"`
	Version uint64 `cbor:"ver" json:"version"`
	Job     string `cbor:"job,omitempty" json:"job,omitempty"`
	Seq     uint64 `cbor:"seq,omitempty" json:"seq"`
}

// SlotInfo is what the journal knows of one slot.
type SlotInfo struct {
	State   slots.State `cbor:"state"`
	Version string      `cbor:"ver,omitempty"`
	SHA256  string      `cbor:"sha,omitempty"` // hex of the image's digest
	Size    int64       `cbor:"size,omitempty"`
	Reason  string      `cbor:"why,omitempty"` // why it is bad
}

// Phase is where an update is. Stored: never rename a value, and never add
// one — an older agent stops on a phase it does not know. Refinements are
// new optional fields next to a phase (docs/journal.md).
type Phase string

const (
	// Downloaded: the payload is in the package store and its digest checked.
	Downloaded Phase = "downloaded"
	// Installing: the idle slot is being written; Update.Written bytes are
	// written and read back.
	Installing Phase = "installing"
	// Installed: the idle slot holds the new set, its digest verified
	// (slot state ready). Waits for activation.
	Installed Phase = "installed"
	// Activating: the trial is being armed in the boot control and the node
	// rebooted into it.
	Activating Phase = "activating"
	// Trial: the new set booted; health checks decide commit or rollback.
	Trial Phase = "trial"
	// RollingBack: the new set was rejected; the node returns to the
	// previous set and checks its health.
	RollingBack Phase = "rolling-back"
	// FallingBack: the previous set failed too; the node goes to F.
	FallingBack Phase = "falling-back"
)

// Update is an update in progress.
type Update struct {
	// Origin names who asked for the update beyond its job id: a
	// technician's token subject when the install came over the console
	// (issue 12). Optional: an older agent drops it; the audit trail
	// then names the job alone.
	Origin  string      `cbor:"origin,omitempty"`
	ID      string      `cbor:"id"`
	Phase   Phase       `cbor:"phase"`
	Target  hw.Slot     `cbor:"target"`        // the slot being updated
	From    hw.Slot     `cbor:"from"`          // the slot that ran when it began
	Item    InstallItem `cbor:"item"`          // what is installed
	Written int64       `cbor:"written"`       // bytes written and verified
	Chk     []byte      `cbor:"chk,omitempty"` // writer checkpoint (deltas)
	// Starts counts agent starts (boots) while this update is past
	// activation: the loop guard (Mender's MaximumStateDataStoreCount).
	Starts   int    `cbor:"starts"`
	Reason   string `cbor:"why,omitempty"` // why rolling/falling back
	Activate bool   `cbor:"act,omitempty"` // reboot into the trial when installed
	// Seq is the sequence number of the signed package this update came
	// from (0: a bare image); it becomes the floor when the set is
	// activated. Keys is the keyring the package's key updates give.
	Seq  uint64 `cbor:"seq,omitempty"`
	Keys []byte `cbor:"keys,omitempty"`
	// Checks are the pre-install validation outcomes per item.
	Checks []validate.Result `cbor:"checks,omitempty"`

	// Issue 13 (activation, vetoes), optional and safe to lose.
	//
	// ActivateAt is the scheduled activation time (Unix seconds, UTC;
	// 0: none), with Activate false: an older agent that drops it waits
	// for a command.
	ActivateAt int64 `cbor:"actat,omitempty"`
	// Force: activate without asking the registered processes (veto.go).
	Force bool `cbor:"force,omitempty"`
	// MaxDefer bounds the total deferral by vetoes, in seconds (0: the
	// agent's default). DeferSince is the first veto's time, DeferUntil
	// when the processes are asked again (Unix seconds; 0: not deferred),
	// DeferReason the veto in a sentence, Answers the last round's
	// answers. Expired: activated because the deferral ran out.
	MaxDefer    int64    `cbor:"maxdef,omitempty"`
	DeferSince  int64    `cbor:"defsince,omitempty"`
	DeferUntil  int64    `cbor:"defuntil,omitempty"`
	DeferReason string   `cbor:"defwhy,omitempty"`
	Answers     []Answer `cbor:"answers,omitempty"`
	Expired     bool     `cbor:"expired,omitempty"`
	// Archived is the tag under which the common data were archived
	// before the activation (empty: nothing archived); a rollback or
	// fallback restores them (commondata.go).
	Archived string `cbor:"arch,omitempty"`
}

// ItemKind says how an item's payload becomes the slot image.
type ItemKind string

const (
	FullImage ItemKind = "full"  // the payload is the image
	Delta     ItemKind = "delta" // the payloads are a delta chain from the active slot
)

// InstallItem is one system-set item to install: what the install path
// needs, whatever carried it (a bare image today, a signed package later).
type InstallItem struct {
	Kind    ItemKind `cbor:"kind"`
	Version string   `cbor:"ver"`
	SHA256  string   `cbor:"sha"`  // hex digest of the resulting image
	Size    int64    `cbor:"size"` // size of the resulting image
	// Payloads are files in the package store: the image, or the deltas
	// of the chain in apply order.
	Payloads []string `cbor:"files"`
	// SourceSHA256 is the digest the active slot must have (deltas).
	SourceSHA256 string `cbor:"src,omitempty"`
	SourceSize   int64  `cbor:"srcsize,omitempty"`
}

// ResultCode is the outcome of an update, as reported. Stored: never rename.
type ResultCode string

const (
	Committed  ResultCode = "committed"   // the new set runs and is confirmed
	RolledBack ResultCode = "rolled-back" // back on the previous set
	FellBack   ResultCode = "fell-back"   // on the factory set F
	Abandoned  ResultCode = "abandoned"   // stopped before activation; nothing changed on the running set
)

// Result is the last update's outcome.
type Result struct {
	ID      string            `cbor:"id,omitempty"`
	Checks  []validate.Result `cbor:"checks,omitempty"`
	Code    ResultCode        `cbor:"code"`
	Version string            `cbor:"ver,omitempty"`
	Slot    hw.Slot           `cbor:"slot,omitempty"` // the slot running after it
	Reason  string            `cbor:"why,omitempty"`
	// Issue 13: the activation was forced past vetoes, or activated
	// because the deferral expired. Optional, safe to lose.
	Forced  bool `cbor:"forced,omitempty"`
	Expired bool `cbor:"expired,omitempty"`
}

func (r *Record) clone() *Record {
	c := *r
	c.Slots = make(map[hw.Slot]*SlotInfo, len(r.Slots))
	for k, v := range r.Slots {
		vv := *v
		c.Slots[k] = &vv
	}
	if r.Update != nil {
		u := *r.Update
		u.Item.Payloads = append([]string(nil), r.Update.Item.Payloads...)
		u.Chk = append([]byte(nil), r.Update.Chk...)
		u.Checks = append([]validate.Result(nil), r.Update.Checks...)
		u.Answers = append([]Answer(nil), r.Update.Answers...)
		c.Update = &u
	}
	if r.Last != nil {
		l := *r.Last
		c.Last = &l
	}
	if r.Link != nil {
		l := *r.Link
		c.Link = &l
	}
	if r.Console != nil {
		g := *r.Console
		c.Console = &g
	}
	c.Comp = r.Comp.clone()
	return &c
}

func (r *Record) slot(s hw.Slot) *SlotInfo {
	if si, ok := r.Slots[s]; ok && si != nil {
		return si
	}
	si := &SlotInfo{State: slots.Empty}
	if r.Slots == nil {
		r.Slots = map[hw.Slot]*SlotInfo{}
	}
	r.Slots[s] = si
	return si
}

func (r *Record) stateOf(s hw.Slot) slots.State { return r.slot(s).State }
