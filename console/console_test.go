package console

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/localapi"
)

// fakeDaemon keeps the daemon's rules for what the console sends: one
// session after a login line ending in "good", mutating console requests
// need it; events stream until the caller leaves.
type fakeDaemon struct {
	mu      sync.Mutex
	session string
	calls   []localapi.Request
}

type fakeConn struct{ d *fakeDaemon }

func (fakeConn) Close() error { return nil }

func (c fakeConn) Call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error {
	d := c.d
	d.mu.Lock()
	d.calls = append(d.calls, req)
	d.mu.Unlock()
	var res any
	switch req.Cmd {
	case "status":
		res = agent.Status{State: "idle", Running: agent.Running{Slot: "A", Version: "1.0"}}
	case "challenge":
		res = localapi.Challenge{Challenge: strings.Repeat("ab", 16), NodeID: "n1"}
	case "login":
		if !strings.HasSuffix(req.Login, "good") {
			return &localapi.Error{Code: localapi.CodeRefused, Message: "login refused: techtoken: token expired"}
		}
		d.mu.Lock()
		d.session = "s1"
		d.mu.Unlock()
		res = localapi.Session{ID: "s1", Subject: "alice", Scopes: []string{"activate"}, Expires: 2e9}
	case "logout":
		d.mu.Lock()
		d.session = ""
		d.mu.Unlock()
	case "activate":
		d.mu.Lock()
		ok := req.Via == localapi.ViaConsole && req.Session == d.session && d.session != ""
		d.mu.Unlock()
		if !ok {
			return errors.New("activate refused: node: no console session: log in first")
		}
		res = localapi.Outcome{Message: "trial armed"}
	case "events":
		for i := uint64(1); ; i++ {
			emit(localapi.Event{Seq: i, Kind: "state", Status: agent.Status{State: "installing"}})
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	default:
		return &localapi.Error{Code: localapi.CodeUnknownCommand, Message: req.Cmd}
	}
	if out != nil && res != nil {
		b, _ := json.Marshal(res)
		return json.Unmarshal(b, out)
	}
	return nil
}

// session runs a console on one end of a pipe and returns the other.
func session(t *testing.T, idle time.Duration) (*fakeDaemon, *term) {
	t.Helper()
	a, b := net.Pipe()
	d := &fakeDaemon{}
	c := &Console{Port: a, Dial: func(context.Context) (Caller, error) { return fakeConn{d}, nil }, Idle: idle, Echo: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tm := &term{t: t, c: b}
	go tm.pump()
	return d, tm
}

type term struct {
	t  *testing.T
	c  net.Conn
	mu sync.Mutex
	s  strings.Builder
	at int
}

func (tm *term) pump() {
	b := make([]byte, 1024)
	for {
		n, err := tm.c.Read(b)
		tm.mu.Lock()
		tm.s.Write(b[:n])
		tm.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	tm.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := tm.c.Write([]byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *term) expect(re string) {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		tm.mu.Lock()
		s := tm.s.String()[tm.at:]
		tm.mu.Unlock()
		if loc := rx.FindStringIndex(s); loc != nil {
			tm.at += loc[1]
			return
		}
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.t.Fatalf("no %q; the console said:\n%s", re, tm.s.String()[tm.at:])
}

func TestConsoleModes(t *testing.T) {
	d, tm := session(t, time.Minute)
	tm.expect(`meterupd> `)
	tm.send("activate\r")
	tm.expect(`refused: log in first`)
	tm.send("login\r")
	tm.expect(`challenge (ab){16}\r\nnode n1`)
	tm.send("login 000102030405060708090a0b0c0d0e0f AAAA bad\r")
	tm.expect(`refused: login refused: techtoken: token expired`)
	tm.send("login 000102030405060708090a0b0c0d0e0f AAAA good\r")
	tm.expect(`logged in as alice, scopes activate`)
	tm.expect(`meterupd alice# `)
	tm.send("json on\r")
	tm.send("commit\r")
	tm.expect(`\{"ok":false,"cmd":"commit","error":"your token lacks the scope \\"commit\\"`)
	tm.send("activate\r")
	tm.expect(`\{"ok":true,"cmd":"activate","result":\{"message":"trial armed"`)
	tm.send("bogus\r")
	tm.expect(`\{"ok":false,"error":"console: unknown command \\"bogus\\"`)
	tm.send("json off\r")
	tm.send("echo off\r")
	tm.expect(`echo off\r\n`)
	tm.send("version")
	tm.send("\x15status\r") // Ctrl-U dropped "version"
	tm.expect(`state idle, running slot A version 1\.0`)
	tm.send("events\r")
	tm.expect(`\[3\] state: installing`)
	tm.send("q")
	tm.expect(`meterupd alice# `)
	tm.send("logout\r")
	tm.expect(`logged out\r\nmeterupd> `)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.session != "" {
		t.Errorf("session %q still open in the daemon", d.session)
	}
	for _, r := range d.calls {
		if r.Via != localapi.ViaConsole {
			t.Errorf("request %s without via console", r.Cmd)
		}
	}
}

func TestConsoleIdleLogsOut(t *testing.T) {
	d, tm := session(t, 300*time.Millisecond)
	tm.expect(`meterupd> `)
	tm.send("login 000102030405060708090a0b0c0d0e0f AAAA good\r")
	tm.expect(`meterupd alice# `)
	tm.expect(`idle timeout: logged out\r\n`)
	tm.expect(`meterupd> `)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.session != "" {
		t.Errorf("idle session still open in the daemon")
	}
}
