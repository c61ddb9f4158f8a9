package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/internal/atomicfile"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/techtoken"
)

// The technician console's login (issue 12): the daemon issues challenges,
// checks login lines and keeps the sessions; the console process only
// relays lines. Failures in a row are counted in the journal
// (agent.ConsoleGuard), so that a restart does not reset them.

// Console login errors.
var (
	// ErrConsoleLocked: too many failed logins in a row; the console refuses
	// logins until the lockout ends.
	ErrConsoleLocked = errors.New("node: console locked after failed logins")
	// ErrNoLogin: the node has no technician keys or no node id.
	ErrNoLogin = errors.New("node: console login not provisioned")
	// ErrSession: the console request carries no live session.
	ErrSession = errors.New("node: no console session: log in first")
	// ErrNeedDaemon: challenges and sessions live in the daemon.
	ErrNeedDaemon = errors.New("node: console login needs the daemon (meterupd run)")
)

// MaxFails is the number of failed logins in a row that locks the console.
const MaxFails = 5

// LockoutSteps are the lockout lengths: the first lockout since the last
// good login, the second, and every later one.
var LockoutSteps = []time.Duration{15 * time.Minute, time.Hour, 24 * time.Hour}

// LoginDelay is how long the daemon holds the answer to a failed login
// before the console shows it: with MaxFails, it bounds guessing at the
// port to a few attempts a minute before the first lockout.
const LoginDelay = time.Second

// maxSessions bounds the live console sessions (one serial line normally
// has one; a newer login pushes the oldest out).
const maxSessions = 4

// NodeFile is the node's console identity: its id (what tokens name as
// node:ID) and its groups (group:NAME), in node.json next to keys.pem.
type NodeFile struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups,omitempty"`
}

type session struct {
	id     string
	claims *techtoken.Claims
}

// consoleAuth is the node's login state: the verifier (nil when login is
// not provisioned: why says so), the challenges and sessions (memory only:
// a restart forgets them, which only makes the technician log in again),
// and the revocation list (kept in a file: the head-end's last word).
type consoleAuth struct {
	verifier *techtoken.Verifier
	why      string
	ch       techtoken.Challenges
	revoked  techtoken.Revocations
	sessions []session
	oplog    *audit.OpLog
}

// RevokedPath is the file keeping the revoked technician token ids.
func (c *Config) RevokedPath() string {
	if c.sim() {
		return filepath.Join(c.StateDir, "revoked.json")
	}
	return filepath.Join(filepath.Dir(MeterStore), "revoked.json")
}

// ClockValid tells whether the node's clock is known to be right. The sim
// board's clock is valid unless the file clock-invalid is in its state
// directory (tests set it). On a meter it is valid once the time was
// synchronised: systemd-timesyncd's /run/systemd/timesync/synchronized, or
// /run/meterupd/clock-valid (written by whatever set the clock from the
// head-end). Either way a clock before techtoken.ClockFloor is invalid.
func (c *Config) ClockValid() bool {
	if c.sim() {
		_, err := os.Stat(filepath.Join(c.StateDir, "clock-invalid"))
		return errors.Is(err, fs.ErrNotExist)
	}
	for _, p := range []string{"/run/systemd/timesync/synchronized", filepath.Join(MeterRun, "clock-valid")} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// openConsole reads the console's provisioning: node.json and
// tech-keys.pem (apart from the package keys in keys.pem), and the
// revocation list. A node without them runs; its console refuses logins
// and says why.
func (n *Node) openConsole() {
	c := &consoleAuth{}
	n.con = c
	c.ch.Now = n.cfg.Clock.Now
	if f, err := n.board.Partition(hw.PartOpLog); err == nil {
		if c.oplog, err = audit.OpenOpLog(f); err != nil {
			n.cfg.Logger.Warn("operational log unavailable", slog.Any("err", err))
		}
	}
	if b, err := os.ReadFile(n.cfg.RevokedPath()); err == nil {
		var ids []string
		if err := json.Unmarshal(b, &ids); err == nil {
			err = c.setRevoked(ids)
		}
		if err != nil {
			n.cfg.Logger.Warn("revocation list unreadable; keeping none until the head-end sends it again", slog.Any("err", err))
		}
	}
	var nf NodeFile
	np := n.cfg.ConfigPath("node.json")
	b, err := os.ReadFile(np)
	if err == nil {
		err = json.Unmarshal(b, &nf)
	}
	if err != nil || nf.ID == "" {
		c.why = fmt.Sprintf("no node id in %s", np)
		return
	}
	kp := n.cfg.ConfigPath("tech-keys.pem")
	b, err = os.ReadFile(kp)
	if err != nil {
		c.why = fmt.Sprintf("no technician authority keys in %s", kp)
		return
	}
	keys, err := manifest.ParseKeyringPEM(b)
	if err != nil {
		c.why = fmt.Sprintf("the technician authority keys in %s cannot be read (%v)", kp, err)
		return
	}
	v, err := techtoken.NewVerifier(keys, n.settings.Keys, nf.ID)
	if err != nil {
		c.why = err.Error()
		return
	}
	v.Groups = nf.Groups
	v.Revoked = &c.revoked
	v.Now = n.cfg.Clock.Now
	v.ClockValid = n.cfg.ClockValid
	c.verifier = v
}

func (c *consoleAuth) setRevoked(hexIDs []string) error {
	ids := make([][]byte, 0, len(hexIDs))
	for _, h := range hexIDs {
		id, err := hex.DecodeString(h)
		if err != nil {
			return fmt.Errorf("%w: revoked id %q is not hex", techtoken.ErrMalformed, h)
		}
		ids = append(ids, id)
	}
	return c.revoked.Replace(ids)
}

// consoleCommand executes challenge, login, logout and revoke.
func (n *Node) consoleCommand(req localapi.Request) (any, error) {
	c := n.con
	if req.Cmd == "revoke" {
		if req.Via == localapi.ViaConsole {
			return nil, fmt.Errorf("revoke refused: the revocation list comes from the head-end, not the console")
		}
		if err := c.setRevoked(req.Revoked); err != nil {
			return nil, fmt.Errorf("revoke refused: %w", err)
		}
		ids := make([]string, 0, len(req.Revoked))
		for _, id := range c.revoked.IDs() {
			ids = append(ids, hex.EncodeToString(id))
		}
		err := atomicfile.Write(n.cfg.RevokedPath(), 0o644, func(w io.Writer) error {
			return json.NewEncoder(w).Encode(ids)
		})
		if err != nil {
			return nil, fmt.Errorf("revoke: kept in memory, not on disk: %w", err)
		}
		return map[string]int{"revoked": len(ids)}, nil
	}
	if n.direct {
		return nil, ErrNeedDaemon
	}
	switch req.Cmd {
	case "challenge":
		if err := n.consoleOpen(); err != nil {
			return nil, err
		}
		nonce, err := c.ch.New()
		if err != nil {
			return nil, err
		}
		return localapi.Challenge{Challenge: hex.EncodeToString(nonce), NodeID: c.verifier.NodeID}, nil
	case "login":
		return n.login(req.Login)
	case "logout":
		c.sessions = slices.DeleteFunc(c.sessions, func(s session) bool { return s.id == req.Session })
		return map[string]string{"message": "logged out"}, nil
	}
	return nil, &localapi.Error{Code: localapi.CodeUnknownCommand, Message: req.Cmd}
}

// consoleOpen refuses when login is not provisioned or locked.
func (n *Node) consoleOpen() error {
	if n.con.verifier == nil {
		return fmt.Errorf("%w: %s", ErrNoLogin, n.con.why)
	}
	g := n.agent.Record().Console
	if g != nil && g.Until > n.cfg.Clock.Now().Unix() {
		return fmt.Errorf("%w: locked until %s", ErrConsoleLocked, time.Unix(g.Until, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func (n *Node) login(line string) (any, error) {
	c := n.con
	if err := n.consoleOpen(); err != nil {
		return nil, err
	}
	l, err := techtoken.ParseLogin(line)
	var cl *techtoken.Claims
	if err == nil {
		cl, err = c.verifier.Login(l, &c.ch)
	}
	now := n.cfg.Clock.Now()
	if err != nil {
		return nil, n.loginFailed(now, err)
	}
	if g := n.agent.Record().Console; g != nil {
		if cerr := n.agent.SetConsole(nil); cerr != nil {
			return nil, fmt.Errorf("login refused: the journal could not record it: %w", cerr)
		}
	}
	sb := make([]byte, 16)
	if _, err := rand.Read(sb); err != nil {
		return nil, err
	}
	s := session{id: hex.EncodeToString(sb), claims: cl}
	if len(c.sessions) >= maxSessions {
		c.sessions = c.sessions[1:]
	}
	c.sessions = append(c.sessions, s)
	msg := fmt.Sprintf("console login by %s (scopes %s, token %x)", cl.Subject, cl.Scope, cl.ID)
	n.opEvent(now, audit.OpLogin, cl.Subject, msg)
	_, exp := cl.Window()
	return localapi.Session{ID: s.id, Subject: cl.Subject, Scopes: cl.Scopes(), Expires: exp.Unix()}, nil
}

// loginFailed counts a failure in the journal (first), locks the console
// after MaxFails in a row, and reports both.
func (n *Node) loginFailed(now time.Time, cause error) error {
	g := agent.ConsoleGuard{}
	if r := n.agent.Record().Console; r != nil {
		g = *r
	}
	g, locked := failed(g, now)
	if err := n.agent.SetConsole(&g); err != nil {
		return fmt.Errorf("login refused: %w; and the journal could not count it: %w", cause, err)
	}
	n.opEvent(now, audit.OpLoginFailed, "", cause.Error())
	if locked > 0 {
		until := time.Unix(g.Until, 0).UTC().Format(time.RFC3339)
		n.opEvent(now, audit.OpLockout, "", fmt.Sprintf("console locked for %s, until %s", locked, until))
		return fmt.Errorf("login refused: %w; %d failures in a row: %w for %s, until %s", cause, MaxFails, ErrConsoleLocked, locked, until)
	}
	return fmt.Errorf("login refused: %w (failure %d of %d before a lockout)", cause, g.Fails, MaxFails)
}

// failed is the guard after one more failure at now, and the lockout it
// starts (0: none).
func failed(g agent.ConsoleGuard, now time.Time) (agent.ConsoleGuard, time.Duration) {
	g.Fails++
	if g.Fails < MaxFails {
		return g, 0
	}
	locked := LockoutSteps[min(g.Lockouts, len(LockoutSteps)-1)]
	g.Lockouts++
	g.Fails = 0
	g.Until = now.Add(locked).Unix()
	return g, locked
}

// opEvent keeps a login event in the operational ring and reports it as an
// event (the MQTT link forwards them). The ring is best effort: a flash
// error is logged, the console carries on.
func (n *Node) opEvent(now time.Time, kind audit.OpKind, who, msg string) {
	if len(msg) > audit.MaxText {
		msg = msg[:audit.MaxText]
	}
	if len(who) > audit.MaxText {
		who = who[:audit.MaxText]
	}
	if o := n.con.oplog; o != nil {
		e := audit.Event{Kind: kind, UnixMilli: now.UnixMilli(), ClockValid: n.cfg.ClockValid(), Origin: audit.Origin{Kind: "technician", ID: who}, Detail: msg}
		if err := o.Append(e); err != nil {
			n.cfg.Logger.Warn("operational log append failed", slog.Any("err", err))
		}
	}
	n.cfg.Logger.Info(msg, slog.String("kind", string(kind)))
	if n.onEvent != nil {
		n.onEvent(localapi.Event{Kind: "console", Message: msg})
	}
}

// consoleAllows checks a console request that changes the node: it needs
// a live session (not expired, token not revoked since) whose token grants
// the command's scope. The Unix socket's other clients (root's CLI, the
// MQTT link) need no login: the socket is root's (or its group's) alone.
func (n *Node) consoleAllows(ctx context.Context, req localapi.Request) error {
	_ = ctx
	c := n.con
	var s *session
	for i := range c.sessions {
		if req.Session != "" && c.sessions[i].id == req.Session {
			s = &c.sessions[i]
		}
	}
	if s == nil {
		return fmt.Errorf("%s refused: %w", req.Cmd, ErrSession)
	}
	_, exp := s.claims.Window()
	if !n.cfg.Clock.Now().Before(exp) {
		return fmt.Errorf("%s refused: %w: the session's token expired at %s", req.Cmd, ErrSession, exp.Format(time.RFC3339))
	}
	if c.revoked.Revoked(s.claims.ID) {
		return fmt.Errorf("%s refused: %w", req.Cmd, techtoken.ErrRevoked)
	}
	if err := s.claims.Require(req.Cmd); err != nil {
		return fmt.Errorf("%s refused: %w", req.Cmd, err)
	}
	return nil
}

// origin names the technician a console request acts for (the subject of
// its session's token): the legal audit trail names them as the update's
// origin. Empty for every other client.
func (n *Node) origin(req localapi.Request) string {
	if req.Via != localapi.ViaConsole || n.con == nil {
		return ""
	}
	for i := range n.con.sessions {
		if s := &n.con.sessions[i]; req.Session != "" && s.id == req.Session {
			return "technician " + s.claims.Subject
		}
	}
	return ""
}
