// Package console is the technician's console: a line protocol on a
// serial or optical-probe port that a person types on (picocom, minicom)
// and a tool parses. It is a client of the daemon's local API: the daemon
// checks logins, keeps the failure counter and the sessions; the console
// holds no secret and no state but the session id of the person at the
// port.
//
// Every line is one command; the answer is plain text, or with `json on`
// one JSON object per answer ({"ok":true,"cmd":…,"result":…} or
// {"ok":false,"cmd":…,"error":…}). Lines are bounded (MaxLine); a line with
// control characters or invalid UTF-8 (a noisy optical probe) and an
// overlong line are refused with a message and not executed.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/localapi"
	"meterupd/ymodem"
)

// Caller is one connection to the daemon (*localapi.Client).
type Caller interface {
	Call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error
	Close() error
}

// Console serves one port.
type Console struct {
	// Port is the line: a serial port, a pty, or stdin/stdout joined.
	Port io.ReadWriter
	// Dial connects to the daemon; each command uses a connection of its
	// own, so that a daemon restart costs only the command in flight.
	Dial func(ctx context.Context) (Caller, error)
	// StoreDir is where uploads land (the package store's directory).
	StoreDir string
	// Free is the room for an upload in StoreDir (the YMODEM limit).
	Free func(dir string) (int64, error)
	// Idle ends a session after this long without a byte; 0: 10 minutes.
	Idle time.Duration
	// JSON and Echo are the initial modes (json on|off, echo on|off).
	JSON, Echo bool
	// Exit: `exit` ends Serve (--stdio); otherwise it logs out.
	Exit bool
	// YModem tunes uploads (Limit is set from Free).
	YModem ymodem.Options
	Logger *slog.Logger

	p       *port
	session *localapi.Session
}

// DefaultIdle is the idle timeout of a session.
const DefaultIdle = 10 * time.Minute

func (c *Console) printf(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	s = strings.ReplaceAll(s, "\n", "\r\n")
	io.WriteString(c.Port, s)
}

func (c *Console) prompt() {
	if c.JSON {
		return
	}
	if c.session != nil {
		c.printf("meterupd %s# ", c.session.Subject)
		return
	}
	c.printf("meterupd> ")
}

// Serve runs the console until ctx ends or the port closes (or `exit`
// with Exit set).
func (c *Console) Serve(ctx context.Context) error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Idle <= 0 {
		c.Idle = DefaultIdle
	}
	c.p = newPort(c.Port)
	if cl, ok := c.Port.(io.Closer); ok {
		// A read waits up to the idle timeout: closing the port ends it.
		stop := context.AfterFunc(ctx, func() { cl.Close() })
		defer stop()
	}
	c.printf("meterupd console; type help\n")
	defer c.logout(context.Background(), "")
	for ctx.Err() == nil {
		c.prompt()
		line, err := c.readLine()
		if errors.Is(err, errIdle) {
			if c.session != nil {
				c.logout(ctx, "idle timeout: logged out\n")
			}
			c.printf("\n")
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if c.run(ctx, line) {
			return nil
		}
	}
	return nil
}

// readLine reads one line with the editing a terminal user expects:
// backspace/DEL erase, Ctrl-U and Ctrl-C drop the line, CR or LF end it
// (a LF after a CR is an empty line, ignored by the caller). An overlong
// line is read to its end and refused whole; control bytes are kept so
// that Parse refuses the line.
func (c *Console) readLine() (string, error) {
	buf := make([]byte, 0, 128)
	over := false
	for {
		b, err := c.p.readByte(c.Idle)
		if err != nil {
			return "", err
		}
		switch b {
		case '\r', '\n':
			if c.Echo {
				c.printf("\n")
			}
			if over {
				return strings.Repeat("x", MaxLine+1), nil
			}
			return string(buf), nil
		case 0x08, 0x7f:
			if len(buf) > 0 {
				buf = buf[:len(buf)-1]
				if c.Echo {
					io.WriteString(c.Port, "\b \b")
				}
			}
			continue
		case 0x15, 0x03: // Ctrl-U, Ctrl-C
			buf, over = buf[:0], false
			if c.Echo {
				c.printf("^U\n")
			}
			c.prompt()
			continue
		}
		if len(buf) >= MaxLine {
			over = true
			continue
		}
		buf = append(buf, b)
		if c.Echo && b >= 0x20 && b < 0x7f {
			c.Port.Write([]byte{b})
		}
	}
}

// answer prints a result (text or JSON).
func (c *Console) answer(cmd string, text string, res any) {
	if c.JSON {
		b, _ := json.Marshal(struct {
			OK     bool   `json:"ok"`
			Cmd    string `json:"cmd"`
			Result any    `json:"result,omitempty"`
		}{true, cmd, res})
		c.printf("%s\n", b)
		return
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	c.printf("%s", text)
}

// refuse prints a refusal (text or JSON).
func (c *Console) refuse(cmd string, err error) {
	if c.JSON {
		b, _ := json.Marshal(struct {
			OK    bool   `json:"ok"`
			Cmd   string `json:"cmd,omitempty"`
			Error string `json:"error"`
		}{false, cmd, err.Error()})
		c.printf("%s\n", b)
		return
	}
	c.printf("refused: %s\n", err)
}

// call runs one request on a fresh connection.
func (c *Console) call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error {
	d, err := c.Dial(ctx)
	if err != nil {
		return fmt.Errorf("the daemon does not answer: %w", err)
	}
	defer d.Close()
	req.Via = localapi.ViaConsole
	if c.session != nil {
		req.Session = c.session.ID
	}
	return d.Call(ctx, req, emit, out)
}

// run executes one line; it reports whether the console should end.
func (c *Console) run(ctx context.Context, line string) (end bool) {
	cmd, err := Parse(line)
	if err != nil {
		c.refuse("", err)
		return false
	}
	if cmd.Name == "" {
		return false
	}
	if cmd.Needs != "" {
		if c.session == nil {
			c.refuse(cmd.Name, errors.New("log in first (login)"))
			return false
		}
		if !hasScope(c.session.Scopes, cmd.Needs) {
			c.refuse(cmd.Name, fmt.Errorf("your token lacks the scope %q (it grants: %s)", cmd.Needs, strings.Join(c.session.Scopes, " ")))
			return false
		}
	}
	switch cmd.Name {
	case "help":
		c.answer("help", "commands:\n"+Help(), Help())
	case "json":
		c.JSON = cmd.Arg == "on"
		c.answer("json", "json "+cmd.Arg, map[string]bool{"json": c.JSON})
	case "echo":
		c.Echo = cmd.Arg == "on"
		c.answer("echo", "echo "+cmd.Arg, map[string]bool{"echo": c.Echo})
	case "exit":
		c.logout(ctx, "")
		if c.Exit {
			c.answer("exit", "bye", nil)
			return true
		}
		c.answer("exit", "logged out", nil)
	case "status":
		var st agent.Status
		if err := c.call(ctx, localapi.Request{Cmd: "status"}, nil, &st); err != nil {
			c.refuse("status", err)
			return false
		}
		c.answer("status", statusText(st), st)
	case "version":
		var v localapi.VersionInfo
		if err := c.call(ctx, localapi.Request{Cmd: "version"}, nil, &v); err != nil {
			c.refuse("version", err)
			return false
		}
		built := v.Go
		if v.Commit != "" {
			built = "commit " + v.Commit + ", " + v.Go
		}
		c.answer("version", fmt.Sprintf("meterupd %s (%s), board %s, local API %d", v.Version, built, v.Board, v.Proto), v)
	case "journal":
		var recs []json.RawMessage
		if err := c.call(ctx, localapi.Request{Cmd: "journal"}, nil, &recs); err != nil {
			c.refuse("journal", err)
			return false
		}
		var b strings.Builder
		for _, r := range recs {
			b.Write(r)
			b.WriteByte('\n')
		}
		c.answer("journal", b.String(), recs)
	case "events":
		c.events(ctx)
	case "audit":
		var l audit.Listing
		if err := c.call(ctx, localapi.Request{Cmd: "audit"}, nil, &l); err != nil {
			c.refuse("audit", err)
			return false
		}
		var b strings.Builder
		if err := audit.WriteText(&b, l.Records, l.Verify); err != nil {
			c.refuse("audit", err)
			return false
		}
		c.answer("audit", b.String(), l)
	case "login":
		c.login(ctx, cmd.Arg)
	case "logout":
		if c.session == nil {
			c.answer("logout", "not logged in", nil)
			return false
		}
		c.logout(ctx, "")
		c.answer("logout", "logged out", nil)
	case "install":
		c.install(ctx)
	case "activate", "rollback", "commit":
		var o localapi.Outcome
		if err := c.call(ctx, localapi.Request{Cmd: cmd.Name, Reason: cmd.Arg}, nil, &o); err != nil {
			c.refuse(cmd.Name, err)
			return false
		}
		c.answer(cmd.Name, outcomeText(o), o)
		if o.Rebooted && c.session != nil {
			// The node restarted: its sessions are gone with it.
			c.session = nil
			if !c.JSON {
				c.printf("the node restarted, which ended the session: log in again\n")
			}
		}
	}
	return false
}

func hasScope(scopes []string, s string) bool {
	for _, x := range scopes {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Console) login(ctx context.Context, line string) {
	if line == "" {
		var ch localapi.Challenge
		if err := c.call(ctx, localapi.Request{Cmd: "challenge"}, nil, &ch); err != nil {
			c.refuse("login", err)
			return
		}
		c.answer("login", fmt.Sprintf("challenge %s\nnode %s\nanswer it with: meterpkg token answer --token TOKEN --key KEY --challenge %s --node %s\nthen paste the login line", ch.Challenge, ch.NodeID, ch.Challenge, ch.NodeID), ch)
		return
	}
	c.logout(ctx, "")
	var s localapi.Session
	if err := c.call(ctx, localapi.Request{Cmd: "login", Login: line}, nil, &s); err != nil {
		c.refuse("login", err)
		return
	}
	c.session = &s
	c.answer("login", fmt.Sprintf("logged in as %s, scopes %s, until %s", s.Subject, strings.Join(s.Scopes, " "), time.Unix(s.Expires, 0).UTC().Format(time.RFC3339)), s)
}

func (c *Console) logout(ctx context.Context, msg string) {
	if c.session == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.call(ctx, localapi.Request{Cmd: "logout"}, nil, nil); err != nil {
		c.Logger.Warn("logout", slog.Any("err", err))
	}
	c.session = nil
	if msg != "" {
		c.printf("%s", msg)
	}
}

// events follows the daemon's events until a key is pressed.
func (c *Console) events(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := make(chan localapi.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.call(ctx, localapi.Request{Cmd: "events"}, func(ev localapi.Event) {
			select {
			case evs <- ev:
			case <-ctx.Done():
			}
		}, nil)
	}()
	if !c.JSON {
		c.printf("following events; press any key to stop\n")
	}
	for {
		select {
		case ev := <-evs:
			c.answer("events", eventText(ev), ev)
			continue
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				c.refuse("events", err)
			}
			return
		default:
		}
		if _, err := c.p.readByte(200 * time.Millisecond); err == nil {
			c.p.drop()
			cancel()
			<-done
			return
		} else if !errors.Is(err, errIdle) {
			cancel()
			<-done
			return
		}
	}
}

// install receives a package with YMODEM into the store directory and asks
// the daemon to install it (verify → select → validate → apply, as every
// package). The upload is removed afterwards: the agent keeps its own copy
// of what it installs.
func (c *Console) install(ctx context.Context) {
	free, err := c.Free(c.StoreDir)
	if err != nil || free <= 0 {
		c.refuse("install", fmt.Errorf("no room in the package store (%v)", err))
		return
	}
	if err := os.MkdirAll(c.StoreDir, 0o755); err != nil {
		c.refuse("install", err)
		return
	}
	f, err := os.CreateTemp(c.StoreDir, "console-upload-*.pkg")
	if err != nil {
		c.refuse("install", err)
		return
	}
	path := f.Name()
	defer os.Remove(path)
	c.printf("ready to receive %d bytes at most: start the YMODEM upload now (sz --ymodem FILE)\n", free)
	c.p.drop()
	opt := c.YModem
	opt.Limit = free
	h, err := ymodem.Receive(ctx, c.Port, f, opt)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// Let the sender finish and the terminal settle before talking.
	time.Sleep(200 * time.Millisecond)
	if err != nil {
		os.Remove(path) // before the answer: a refusal leaves nothing
		c.refuse("install", fmt.Errorf("upload failed, nothing installed: %w", err))
		return
	}
	abs, _ := filepath.Abs(path)
	c.printf("received %s (%d bytes); verifying and installing\n", h.Name, h.Size)
	var o localapi.Outcome
	shown := int64(-1)
	err = c.call(ctx, localapi.Request{Cmd: "install", Paths: []string{abs}, NoActivate: true}, func(ev localapi.Event) {
		// Every quarter: at 9600 baud a line per erase block is too much.
		if p := ev.Status.Progress; !c.JSON && ev.Kind == "state" && p != nil && p.Total > 0 {
			if q := 4 * p.Done / p.Total; q != shown {
				shown = q
				c.printf("  %s %d%%\n", ev.Status.State, 100*p.Done/p.Total)
			}
		}
	}, &o)
	os.Remove(path) // the daemon has answered: the agent holds its own copy
	if err != nil {
		c.refuse("install", err)
		return
	}
	c.answer("install", outcomeText(o), o)
}

func outcomeText(o localapi.Outcome) string {
	if o.Rebooted {
		return fmt.Sprintf("%s; the node rebooted into slot %s", o.Message, o.Booted)
	}
	return o.Message
}

func eventText(ev localapi.Event) string {
	if ev.Message != "" {
		return fmt.Sprintf("[%d] %s: %s", ev.Seq, ev.Kind, ev.Message)
	}
	s := fmt.Sprintf("[%d] %s: %s", ev.Seq, ev.Kind, ev.Status.State)
	if p := ev.Status.Progress; p != nil && p.Total > 0 {
		s += fmt.Sprintf(" %d%% (%d of %d bytes)", 100*p.Done/p.Total, p.Done, p.Total)
	}
	return s
}

func statusText(st agent.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state %s, running slot %s version %s (primary %s), meterupd %s\n", st.State, st.Running.Slot, st.Running.Version, st.Primary, st.Agent)
	for _, s := range []string{"A", "B", "F"} {
		for k, ss := range st.Slots {
			if string(k) == s {
				fmt.Fprintf(&b, "slot %s: %s %s %s\n", s, ss.Role, ss.State, ss.Version)
			}
		}
	}
	if u := st.Update; u != nil {
		fmt.Fprintf(&b, "update: %s, version %s into slot %s\n", u.Phase, u.Version, u.Target)
	}
	if l := st.Last; l != nil {
		fmt.Fprintf(&b, "last result: %s %s %s\n", l.Code, l.Version, l.Reason)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "CONFIGURATION PROBLEM: %s\n", p)
	}
	return b.String()
}
