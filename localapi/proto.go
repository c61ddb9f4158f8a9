package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/validate"
)

// Proto is the protocol version this package speaks; MinProto the oldest
// it still serves.
const (
	Proto    = 1
	MinProto = 1
)

// MaxLine bounds one JSON line in either direction: a request or an
// answer never needs more, and a peer that sends more is cut off.
const MaxLine = 1 << 20

// Hello opens a connection, in each direction.
type Hello struct {
	Proto    int      `json:"proto"`
	MinProto int      `json:"min_proto,omitempty"`
	Client   string   `json:"client,omitempty"`
	Agent    string   `json:"agent,omitempty"`
	Commands []string `json:"commands,omitempty"`
}

// Request is one command. Only the fields of its command are set.
type Request struct {
	ID  uint64 `json:"id"`
	Cmd string `json:"cmd"`
	// install: a signed package (one path) or an image or delta chain.
	Paths        []string `json:"paths,omitempty"`
	SHA256       string   `json:"sha256,omitempty"`
	Version      string   `json:"version,omitempty"`
	Job          string   `json:"job,omitempty"`
	Delta        bool     `json:"delta,omitempty"`
	SourceSHA256 string   `json:"source_sha256,omitempty"`
	NoActivate   bool     `json:"no_activate,omitempty"`
	// CommitTrial: a set on trial is committed first (once the request
	// has passed every check); without it an install during a trial is
	// refused.
	CommitTrial bool `json:"commit_trial,omitempty"`
	// rollback: why.
	Reason string `json:"reason,omitempty"`

	// The head-end link's commands (issue 10): link-facts sets the link's
	// persisted facts (Link; absent: only read them); needs and request
	// take a signed manifest (Manifest, the COSE_Sign1 bytes).
	Link     *agent.LinkFacts `json:"link,omitempty"`
	Manifest []byte           `json:"manifest,omitempty"`
	// Issue 12 (technician console). Login is the pasted login line
	// (login); Session names the console session a request acts for
	// (logout, and every mutating request with Via "console"); Via is
	// the client kind: "console" requests must carry a live session with
	// the command's scope. Revoked is the whole revocation list, token ids
	// (cti) in hex (revoke).
	Login   string   `json:"login,omitempty"`
	Session string   `json:"session,omitempty"`
	Via     string   `json:"via,omitempty"`
	Revoked []string `json:"revoked,omitempty"`
	// Issue 13. ActivateAt (install, schedule) is the activation time,
	// RFC 3339 (UTC). On install it schedules the activation instead of
	// activating at once; on schedule it sets or moves it, and schedule
	// without it cancels the time (the set then waits for activate).
	ActivateAt string `json:"activate_at,omitempty"`
	// install: MaxDeferS bounds the deferral by vetoes (seconds; 0: the
	// agent's default). install, activate: Force activates without
	// asking the registered processes (recorded as forced).
	MaxDeferS int64 `json:"max_defer_s,omitempty"`
	Force     bool  `json:"force,omitempty"`
	// veto-register: the process's name and how long it may take to
	// answer (ms; 0: 5 s, at most 60 s).
	Process   string `json:"process,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	// veto-answer: the question answered, ok or a veto with its code,
	// retry-after and detail (Reason).
	Question    uint64 `json:"question,omitempty"`
	Veto        bool   `json:"veto,omitempty"`
	Code        string `json:"code,omitempty"`
	RetryAfterS int64  `json:"retry_after_s,omitempty"`
}

// ViaConsole marks a request from the technician console.
const ViaConsole = "console"

// Challenge is the answer to challenge: a fresh login challenge for the
// node's id (issue 12).
type Challenge struct {
	Challenge string `json:"challenge"`
	NodeID    string `json:"node_id"`
}

// Session is the answer to login: a console session with the token's
// subject, scopes and end (issue 12).
type Session struct {
	ID      string   `json:"session"`
	Subject string   `json:"subject"`
	Scopes  []string `json:"scopes"`
	Expires int64    `json:"expires"` // Unix seconds
}

// VetoQuestion is what a registered process is asked (event "ask" on its
// veto-register stream); it answers with veto-answer before Deadline.
type VetoQuestion struct {
	ID       uint64         `json:"id"`
	Question agent.Question `json:"question"`
	Deadline time.Time      `json:"deadline"`
}

// ActivationTime parses ActivateAt (zero when empty).
func (r *Request) ActivationTime() (time.Time, error) {
	if r.ActivateAt == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, r.ActivateAt)
	if err != nil {
		return time.Time{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("activate_at %q is not an RFC 3339 time (e.g. 2026-12-01T02:00:00Z)", r.ActivateAt)}
	}
	return t.UTC(), nil
}

// clientLine is one line from a client: its hello, then requests.
type clientLine struct {
	Hello *Hello `json:"hello,omitempty"`
	Request
}

// daemonLine is one line from the daemon: its hello, then events and
// answers.
type daemonLine struct {
	Hello  *Hello          `json:"hello,omitempty"`
	ID     uint64          `json:"id,omitempty"`
	Event  *Event          `json:"event,omitempty"`
	Done   bool            `json:"done,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Event is a state change of the node, as subscribers see it.
type Event struct {
	// Seq numbers the daemon's events from 1; a gap tells a slow
	// subscriber that it missed some.
	Seq uint64 `json:"seq"`
	// Kind: "state" (a journal commit: phase, progress, result),
	// "reboot" (the sim board rebooted; the agent starts again),
	// "started" (the agent is up and at rest or driving an update).
	Kind    string       `json:"kind"`
	Message string       `json:"message,omitempty"`
	Status  agent.Status `json:"status"`
	// Question: kind "ask", to a process registered with veto-register
	// (issue 13).
	Question *VetoQuestion `json:"question,omitempty"`
}

// Outcome is the answer to install, activate, rollback and commit: the
// sentence the CLI prints, and the node's state after the command.
type Outcome struct {
	Message string            `json:"message"`
	Checks  []validate.Result `json:"checks,omitempty"`
	// Rebooted: the command ended in a reboot; Booted is the slot the
	// bootloader started.
	Rebooted bool         `json:"rebooted,omitempty"`
	Booted   hw.Slot      `json:"booted,omitempty"`
	Status   agent.Status `json:"status"`
}

// VersionInfo is the answer to version.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Go      string `json:"go"`
	Board   string `json:"board,omitempty"`
	Proto   int    `json:"proto"`
}

// Error is a refused command on the wire.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Checks are the validation outcomes of a refused package.
	Checks []validate.Result `json:"checks,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeUnknownCommand = "unknown-command"
	CodeBadRequest     = "bad-request"
	CodeRefused        = "refused"  // the node refused the command (the message says why)
	CodeStopping       = "stopping" // the daemon is stopping; try again after its restart
)

// ErrStopping is returned to commands the daemon did not finish because
// it was told to stop.
var ErrStopping = errors.New("localapi: the daemon is stopping")

// Command is one entry of the command table.
type Command struct {
	Name string
	// Mutates: the command changes the node (queued to the owner).
	Mutates bool
	// Stream: the command answers with events until the client leaves.
	Stream bool
	Help   string
}

// Commands is the one command table of the node: the CLI and the console
// offer these, the daemon executes them.
var Commands = []Command{
	{Name: "status", Help: "the node's state (agent.Status)"},
	{Name: "journal", Help: "the journal's records, oldest first"},
	{Name: "version", Help: "version, commit, Go version, board"},
	{Name: "events", Stream: true, Help: "follow state changes live"},
	{Name: "install", Mutates: true, Help: "install a signed package, or an image or delta chain"},
	{Name: "activate", Mutates: true, Help: "reboot into an installed set"},
	{Name: "rollback", Mutates: true, Help: "go back to the previous set"},
	{Name: "commit", Mutates: true, Help: "confirm the set on trial"},
	// The head-end link's (issue 10).
	{Name: "link-facts", Mutates: true, Help: "read, or set, the head-end link's persisted facts (gate, job, report sequence)"},
	{Name: "needs", Help: "the payloads of a signed manifest this node would install"},
	{Name: "request", Help: "the software update request for a signed manifest (or none)"},
	// Issue 12 (technician console).
	{Name: "challenge", Help: "a fresh login challenge for the console"},
	{Name: "login", Help: "check a login line; answers a console session"},
	{Name: "logout", Help: "end a console session"},
	{Name: "revoke", Mutates: true, Help: "replace the revoked technician token list (the head-end's)"},
	{Name: "audit", Help: "the legal audit trail and its chain's verification (audit.Listing)"},
	// Issue 13.
	{Name: "schedule", Mutates: true, Help: "set, move (activate_at) or cancel the installed set's activation time"},
	{Name: "veto-register", Stream: true, Help: "a local process asks to be asked before activations (events \"ask\")"},
	{Name: "veto-answer", Help: "a registered process answers a question: ok, or a veto with code and retry-after"},
}

// Lookup finds a command of the table.
func Lookup(name string) (Command, bool) {
	for _, c := range Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Check rejects a request that cannot be right before anything runs.
func (r *Request) Check() error {
	if _, ok := Lookup(r.Cmd); !ok {
		return &Error{Code: CodeUnknownCommand, Message: fmt.Sprintf("unknown command %q", r.Cmd)}
	}
	for _, p := range r.Paths {
		if !strings.HasPrefix(p, "/") {
			return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("path %q is not absolute", p)}
		}
	}
	if _, err := r.ActivationTime(); err != nil {
		return err
	}
	if err := r.checkVeto(); err != nil {
		return err
	}
	if r.Cmd == "install" && len(r.Paths) == 0 {
		return &Error{Code: CodeBadRequest, Message: "install needs a package or image path"}
	}
	return nil
}

// Handler executes commands: the node implements it, the daemon serves it
// on the socket, and the CLI calls it directly when no daemon runs.
// Handle answers one request; it may call emit (from any goroutine, until
// it returns) with events for the client. Its result is JSON-encoded on
// the wire.
type Handler interface {
	Handle(ctx context.Context, req Request, emit func(Event)) (any, error)
}

// Limits of the veto protocol.
const (
	MaxProcessName    = 64
	DefaultVetoWait   = 5 * time.Second
	MaxVetoWait       = time.Minute
	MaxVetoRetryAfter = 7 * 24 * 3600 // seconds
)

func (r *Request) checkVeto() error {
	bad := func(f string, a ...any) error { return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(f, a...)} }
	switch r.Cmd {
	case "veto-register":
		if r.Process == "" || len(r.Process) > MaxProcessName || strings.ContainsFunc(r.Process, func(c rune) bool { return c < ' ' || c > '~' }) {
			return bad("veto-register needs a process name of 1 to %d printable ASCII characters", MaxProcessName)
		}
		if r.TimeoutMS < 0 || time.Duration(r.TimeoutMS)*time.Millisecond > MaxVetoWait {
			return bad("timeout_ms %d: at most %d", r.TimeoutMS, MaxVetoWait.Milliseconds())
		}
	case "veto-answer":
		if r.Question == 0 {
			return bad("veto-answer needs the question's id")
		}
		if r.Veto && !agent.ValidVetoCode(agent.VetoCode(r.Code)) {
			return bad("veto code %q is not one of %v", r.Code, agent.VetoCodes)
		}
		if r.RetryAfterS < 0 || r.RetryAfterS > MaxVetoRetryAfter {
			return bad("retry_after_s %d: 0 to %d", r.RetryAfterS, MaxVetoRetryAfter)
		}
		if len(r.Reason) > agent.MaxVetoDetail {
			return bad("veto detail of %d bytes: at most %d", len(r.Reason), agent.MaxVetoDetail)
		}
	}
	if r.MaxDeferS < 0 {
		return bad("max_defer_s %d", r.MaxDeferS)
	}
	return nil
}
