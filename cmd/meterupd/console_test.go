package main

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/internal/pty"
	"meterupd/internal/realtool"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/node"
	"meterupd/techtoken"
)

// consoleKit is a sim node provisioned for the console (id m-0042, group
// feeder-7, a technician authority key), a signed package for it, and the
// real meterpkg binary to issue tokens and answer challenges.
type consoleKit struct {
	dir, pkg, meterpkg, keys string
}

func newConsoleKit(t *testing.T) *consoleKit {
	t.Helper()
	k := &consoleKit{keys: t.TempDir()}
	k.meterpkg = filepath.Join(k.keys, "meterpkg")
	if out, err := exec.Command("go", "build", "-o", k.meterpkg, "meterupd/cmd/meterpkg").CombinedOutput(); err != nil {
		t.Fatalf("build meterpkg: %v\n%s", err, out)
	}
	k.mp(t, "keygen", "--alg", "ed25519", filepath.Join(k.keys, "techauth"))
	k.mp(t, "keygen", "--alg", "ed25519", filepath.Join(k.keys, "alice"))
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := manifest.NewKeyring(key.Public())
	pem, _ := kr.MarshalPEM()
	kf := filepath.Join(k.keys, "keys.pem")
	if err := os.WriteFile(kf, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	k.dir = filepath.Join(t.TempDir(), "node")
	mustMU(t, k.dir, "sim", "init", k.dir, "--version", "1.0", "--image-size", "262144", "--keys", kf,
		"--id", "m-0042", "--groups", "feeder-7", "--tech-keys", filepath.Join(k.keys, "techauth.pub.pem"))
	items, payloads := chainItems(t)
	k.pkg = writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 5, Items: items}, payloads, nil)
	return k
}

func (k *consoleKit) mp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(k.meterpkg, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("meterpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// token issues a token for alice with extra flags (default: node m-0042,
// every scope, 8 h).
func (k *consoleKit) token(t *testing.T, name string, flags ...string) string {
	t.Helper()
	p := filepath.Join(k.keys, name+".token")
	args := []string{"token", "issue", "--key", filepath.Join(k.keys, "techauth.key.pem"), "--tech-key", filepath.Join(k.keys, "alice.pub.pem"),
		"--subject", "alice", "-o", p}
	has := func(f string) bool { return strings.Contains(strings.Join(flags, " "), f) }
	if !has("--nodes") && !has("--group") {
		args = append(args, "--nodes", "m-0042")
	}
	if !has("--scope") {
		args = append(args, "--scope", "install,activate,rollback,commit")
	}
	k.mp(t, append(args, flags...)...)
	return p
}

// answer is the login line for a challenge.
func (k *consoleKit) answer(t *testing.T, token, challenge string) string {
	t.Helper()
	return strings.TrimSpace(k.mp(t, "token", "answer", "--token", token, "--key", filepath.Join(k.keys, "alice.key.pem"),
		"--challenge", challenge, "--node", "m-0042"))
}

// call sends one request to the daemon as the console would.
func call(t *testing.T, dir string, req localapi.Request, out any) error {
	t.Helper()
	c, err := localapi.Dial(context.Background(), filepath.Join(dir, "meterupd.sock"), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req.Via = localapi.ViaConsole
	return c.Call(context.Background(), req, nil, out)
}

func (k *consoleKit) challenge(t *testing.T) string {
	t.Helper()
	var ch localapi.Challenge
	if err := call(t, k.dir, localapi.Request{Cmd: "challenge"}, &ch); err != nil {
		t.Fatalf("challenge: %v", err)
	}
	if ch.NodeID != "m-0042" || len(ch.Challenge) != 32 {
		t.Fatalf("challenge %+v", ch)
	}
	return ch.Challenge
}

func guard(t *testing.T, dir string) agent.ConsoleGuard {
	t.Helper()
	var recs []agent.HistoryEntry
	if err := call(t, dir, localapi.Request{Cmd: "journal"}, &recs); err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1].Record
	if last == nil || last.Console == nil {
		return agent.ConsoleGuard{}
	}
	return *last.Console
}

// TestConsoleLoginRefusals: each bad login is refused with its own reason
// and changes nothing on the node but the failure counter in the journal;
// five in a row lock the console, and the lockout survives a restart.
func TestConsoleLoginRefusals(t *testing.T) {
	k := newConsoleKit(t)
	good := k.token(t, "good")
	stop, _ := daemon(t, k.dir)
	st0 := status(t, k.dir)
	fails := 0
	refuse := func(name, line string, want error) {
		t.Helper()
		var s localapi.Session
		began := time.Now()
		err := call(t, k.dir, localapi.Request{Cmd: "login", Login: line}, &s)
		if took := time.Since(began); took < node.LoginDelay {
			t.Errorf("%s: refused after %s, before the delay per attempt (%s)", name, took, node.LoginDelay)
		}
		if err == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Fatalf("%s: login = %v, want %v", name, err, want)
		}
		fails++
		if g := guard(t, k.dir); g.Fails != fails%node.MaxFails && !(fails == node.MaxFails && g.Until > 0) {
			t.Errorf("%s: guard %+v after %d failures", name, g, fails)
		}
		st := status(t, k.dir)
		if st.Running != st0.Running || st.Primary != st0.Primary || st.Slots["B"] != st0.Slots["B"] || st.Update != nil {
			t.Errorf("%s changed the node: %+v", name, st)
		}
	}
	other := k.token(t, "other", "--nodes", "m-9999")
	refuse("another node's token", k.answer(t, other, k.challenge(t)), techtoken.ErrAudience)
	expired := k.token(t, "expired", "--not-before", time.Now().Add(-3*time.Hour).UTC().Format(time.RFC3339), "--valid", "1h")
	refuse("expired token", k.answer(t, expired, k.challenge(t)), techtoken.ErrExpired)
	line := k.answer(t, good, k.challenge(t))
	forged := strings.Fields(line)
	forged[3] = forged[3][:10] + map[bool]string{true: "A", false: "B"}[forged[3][10] != 'A'] + forged[3][11:]
	refuse("forged answer", strings.Join(forged, " "), techtoken.ErrAnswer)
	refuse("replayed challenge", line, techtoken.ErrNonce)

	// A good login resets the counter.
	var s localapi.Session
	if err := call(t, k.dir, localapi.Request{Cmd: "login", Login: k.answer(t, good, k.challenge(t))}, &s); err != nil {
		t.Fatalf("good login: %v", err)
	}
	if s.Subject != "alice" || len(s.Scopes) != 4 {
		t.Errorf("session %+v", s)
	}
	if g := guard(t, k.dir); g != (agent.ConsoleGuard{}) {
		t.Errorf("guard after a good login: %+v", g)
	}
	fails = 0

	// Revoked: the head-end's list (hex cti), kept across restarts.
	tb, _ := os.ReadFile(good)
	cl, err := techtoken.ClaimsUnverified(tb)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, k.dir, localapi.Request{Cmd: "revoke", Revoked: []string{hex.EncodeToString(cl.ID)}}, nil); err == nil {
		t.Fatal("revoke from the console accepted")
	}
	c, _ := localapi.Dial(context.Background(), filepath.Join(k.dir, "meterupd.sock"), "head-end")
	if err := c.Call(context.Background(), localapi.Request{Cmd: "revoke", Revoked: []string{hex.EncodeToString(cl.ID)}}, nil, nil); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	c.Close()
	if err := call(t, k.dir, localapi.Request{Cmd: "rollback", Session: s.ID}, nil); !strings.Contains(errString(err), techtoken.ErrRevoked.Error()) {
		t.Errorf("rollback with a revoked session: %v", err)
	}
	refuse("revoked token", k.answer(t, good, k.challenge(t)), techtoken.ErrRevoked)

	// Clock not known to be valid.
	if err := os.WriteFile(filepath.Join(k.dir, "clock-invalid"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other2 := k.token(t, "scoped", "--scope", "activate")
	refuse("clock invalid", k.answer(t, other2, k.challenge(t)), techtoken.ErrClockInvalid)
	os.Remove(filepath.Join(k.dir, "clock-invalid"))
	refuse("another node again", k.answer(t, other, k.challenge(t)), techtoken.ErrAudience)
	refuse("expired again", k.answer(t, expired, k.challenge(t)), techtoken.ErrExpired)
	refuse("fifth failure locks", k.answer(t, other, k.challenge(t)), errors.New("console locked"))
	g := guard(t, k.dir)
	if g.Lockouts != 1 || time.Until(time.Unix(g.Until, 0)) < 14*time.Minute {
		t.Fatalf("guard after 5 failures: %+v", g)
	}
	if err := call(t, k.dir, localapi.Request{Cmd: "challenge"}, nil); err == nil || !strings.Contains(err.Error(), "console locked") {
		t.Fatalf("challenge while locked: %v", err)
	}
	// Still locked after a restart: the journal keeps the lockout.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The operational ring kept every failure, the lockout and the login.
	b, err := sim.Open(k.dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := b.Partition(hw.PartOpLog)
	if err != nil {
		t.Fatal(err)
	}
	ol, err := audit.OpenOpLog(f)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[audit.OpKind]int{}
	for _, e := range ol.Events() {
		kinds[e.Kind]++
	}
	b.Close()
	if want := map[audit.OpKind]int{audit.OpLoginFailed: 9, audit.OpLockout: 1, audit.OpLogin: 1}; !maps.Equal(kinds, want) {
		t.Errorf("operational ring %v, want %v", kinds, want)
	}
	daemon(t, k.dir)
	if err := call(t, k.dir, localapi.Request{Cmd: "challenge"}, nil); err == nil || !strings.Contains(err.Error(), "console locked") {
		t.Fatalf("challenge after a restart: %v", err)
	}
	if g2 := guard(t, k.dir); g2 != g {
		t.Errorf("guard after a restart %+v, want %+v", g2, g)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ptyLine is the technician's end of a pseudo-terminal whose other end the
// console serves.
type ptyLine struct {
	t   *testing.T
	m   *os.File
	buf []byte
	all strings.Builder
}

func (p *ptyLine) send(s string) {
	p.t.Helper()
	for len(s) > 0 { // a person types, a paste arrives in pieces: 64 bytes a write
		n := min(64, len(s))
		if _, err := p.m.WriteString(s[:n]); err != nil {
			p.t.Fatal(err)
		}
		s = s[n:]
		time.Sleep(2 * time.Millisecond)
	}
}

// expect reads until re matches, and returns the submatches; what comes
// after the match stays for the next expect.
func (p *ptyLine) expect(re string, d time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	// Every wait is a bound for a loaded machine, not a speed asserted:
	// a CI machine shared with other builds can hold the daemon for tens
	// of seconds, so the bound is three times what a quiet machine needs.
	d *= 3
	deadline := time.Now().Add(d)
	b := make([]byte, 4096)
	for {
		if loc := rx.FindSubmatchIndex(p.buf); loc != nil {
			var out []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] >= 0 {
					out = append(out, string(p.buf[loc[i]:loc[i+1]]))
				} else {
					out = append(out, "")
				}
			}
			p.buf = p.buf[loc[1]:]
			return out
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q within %s; the console said:\n%s", re, d, p.all.String())
		}
		p.m.SetReadDeadline(deadline)
		n, _ := p.m.Read(b)
		p.buf = append(p.buf, b[:n]...)
		p.all.Write(b[:n])
	}
}

// TestConsoleSessionOverPty: a person's session over a real
// pseudo-terminal, the console on its slave side as on a UART (--port):
// read-only commands, mistakes, a login with a token from `meterpkg token
// issue` answered by `meterpkg token answer`, a missing scope, an upload
// with the real sz (1K YMODEM) installed by the daemon, activation and
// status.
func TestConsoleSessionOverPty(t *testing.T) {
	sz := realtool.Need(t, "sz", "lrzsz")
	k := newConsoleKit(t)
	tok := k.token(t, "alice", "--scope", "install,activate,commit")
	daemon(t, k.dir)
	master, slave := openPTY(t)
	cout := startConsole(t, k.dir, slave, "--idle", "1m")
	p := &ptyLine{t: t, m: master}
	p.expect(`meterupd> `, 10*time.Second)
	p.send("status\r")
	p.expect(`state idle, running slot A version 1\.0`, 10*time.Second)
	p.expect(`meterupd> `, 5*time.Second)
	p.send("staus\r")
	p.expect(`refused: console: unknown command "staus"`, 5*time.Second)
	p.send("install\r")
	p.expect(`refused: log in first`, 5*time.Second)
	p.send("sta\x01\x02tus\r")
	p.expect(`refused: console: garbled line`, 5*time.Second)
	p.send(strings.Repeat("x", 3100) + "\r")
	p.expect(`refused: console: line too long`, 10*time.Second)
	p.send("stat\x7f\x7fatus\r") // backspace twice
	p.expect(`state idle`, 10*time.Second)
	p.send("audit\r")
	p.expect(`chain: intact, \d+ records`, 10*time.Second)

	p.send("login\r")
	ch := p.expect(`challenge ([0-9a-f]{32})`, 10*time.Second)[1]
	p.expect(`paste the login line\r\nmeterupd> `, 5*time.Second)
	p.send(k.answer(t, tok, ch) + "\r")
	p.expect(`logged in as alice, scopes install activate commit`, 10*time.Second)
	p.expect(`meterupd alice# `, 5*time.Second)
	p.send("rollback\r")
	p.expect(`lacks the scope "rollback"`, 5*time.Second)

	p.send("json on\r")
	p.expect(`\{"ok":true,"cmd":"json"`, 5*time.Second)
	p.send("version\r")
	p.expect(`\{"ok":true,"cmd":"version","result":\{"version":`, 5*time.Second)
	p.send("json off\r")
	p.expect(`json off`, 5*time.Second)

	// A batch of two files is refused whole: nothing installed, no
	// upload left in the store, the node as it was.
	st0 := status(t, k.dir)
	p.send("install\r")
	p.expect(`start the YMODEM upload now`, 10*time.Second)
	two := exec.Command(sz, "--ymodem", "-k", k.pkg, k.pkg)
	two.Stdin, two.Stdout = master, master
	if err := two.Run(); err == nil {
		t.Errorf("sz of a two-file batch succeeded")
	}
	p.buf = p.buf[:0]
	p.expect(`refused: upload failed, nothing installed: ymodem`, 20*time.Second)
	if st := status(t, k.dir); st.Update != nil || st.Slots["B"] != st0.Slots["B"] {
		t.Errorf("a refused batch changed the node: %+v", st)
	}
	if m, _ := filepath.Glob(filepath.Join(k.dir, "store", "console-upload-*")); len(m) != 0 {
		t.Errorf("uploads left in the store: %v", m)
	}
	time.Sleep(500 * time.Millisecond)
	p.send("\r")
	p.expect(`meterupd alice# $`, 10*time.Second)

	p.send("install\r")
	p.expect(`start the YMODEM upload now`, 10*time.Second)
	cmd := exec.Command(sz, "--ymodem", "-k", k.pkg)
	cmd.Stdin, cmd.Stdout = master, master
	var szErr strings.Builder
	cmd.Stderr = &szErr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sz: %v\n%s\nconsole: %s", err, szErr.String(), cout.String())
	}
	p.buf = p.buf[:0]
	p.expect(`received update\.pkg \(\d+ bytes\); verifying and installing`, 20*time.Second)
	p.expect(`installed version 3\.0 into slot B`, 60*time.Second)
	if st := status(t, k.dir); st.Update == nil || st.Update.Phase != agent.Installed || st.Update.Version != "3.0" {
		t.Fatalf("after the console install: %+v", st)
	}
	// The legal audit trail names the technician as the update's origin.
	if out := mustMU(t, k.dir, "audit"); !strings.Contains(out, "technician:") || !strings.Contains(out, "by technician alice") {
		t.Errorf("the audit trail does not name the technician who installed:\n%s", out)
	}
	p.send("activate\r")
	p.expect(`trial armed; the node rebooted into slot B\r\nthe node restarted, which ended the session: log in again\r\nmeterupd> `, 60*time.Second)
	// A status asked right after the reboot can come before the new
	// agent has started (on a loaded machine: it then says activating,
	// running slot A): ask again until the trial runs, as a technician
	// would.
	for deadline := time.Now().Add(90 * time.Second); ; {
		p.send("status\r")
		got := p.expect(`running slot ([AB]) version ([0-9.]+)`, 30*time.Second)
		if got[1] == "B" && got[2] == "3.0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node still says it runs slot %s version %s", got[1], got[2])
		}
		p.expect(`meterupd> `, 10*time.Second)
		time.Sleep(time.Second)
	}
	p.send("commit\r")
	p.expect(`refused: log in first`, 5*time.Second)
}

// TestConsoleStdioGetty: `meterupd console --stdio` as a getty starts it,
// on a terminal as its standard input and output (the pty's slave): it
// takes the terminal raw, echoes and edits itself, and `exit` ends it.
func TestConsoleStdioGetty(t *testing.T) {
	dir := newNode(t)
	daemon(t, dir)
	bin := filepath.Join(t.TempDir(), "meterupd")
	if out, err := exec.Command("go", "build", "-o", bin, "meterupd/cmd/meterupd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	master, slave := openPTY(t)
	tty, err := os.OpenFile(slave, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	cmd := exec.Command(bin, "--state", dir, "console", "--stdio")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	defer func() {
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	}()
	p := &ptyLine{t: t, m: master}
	p.expect(`meterupd> `, 10*time.Second)
	p.send("versoin\x7f\x7f\x7fion\r")
	p.expect(`ion\r\nmeterupd \S+ \(.*go[0-9.]+\), board sim`, 10*time.Second)
	p.send("status\r")
	p.expect(`state idle, running slot A`, 10*time.Second)
	p.send("exit\r")
	p.expect(`bye`, 10*time.Second)
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("console --stdio: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("console --stdio did not end at exit")
	}
}

// TestMeterpkgConsoleLogin: the technician's tool logs in by itself over a
// null-modem (two real pseudo-terminals joined by the test), the meter's
// console on one end, `meterpkg console` on the other; a bad token is
// refused with the node's reason.
func TestMeterpkgConsoleLogin(t *testing.T) {
	k := newConsoleKit(t)
	good := k.token(t, "good")
	other := k.token(t, "other", "--nodes", "m-9999")
	daemon(t, k.dir)
	m1, s1 := openPTY(t)
	m2, s2 := openPTY(t)
	go io.Copy(m1, m2) // the cable
	go io.Copy(m2, m1)
	startConsole(t, k.dir, s1)
	time.Sleep(300 * time.Millisecond) // the console opens its port
	out, err := exec.Command(k.meterpkg, "console", "--port", s2, "--token", other, "--key", filepath.Join(k.keys, "alice.key.pem"), "--timeout", "20s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "token not for this node") {
		t.Errorf("another node's token: %v\n%s", err, out)
	}
	out, err = exec.Command(k.meterpkg, "console", "--port", s2, "--token", good, "--key", filepath.Join(k.keys, "alice.key.pem"), "--timeout", "20s").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "logged in as alice, scopes install activate rollback commit") {
		t.Errorf("meterpkg console: %v\n%s", err, out)
	}
	if g := guard(t, k.dir); g != (agent.ConsoleGuard{}) {
		t.Errorf("guard after a good login: %+v", g)
	}
}

// openPTY opens a pseudo-terminal for the test: its master, and the path
// of its slave (which a program opens like a UART).
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	master, slave, sfd, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		master.Close()
		pty.CloseFD(sfd)
	})
	return master, slave
}

// startConsole runs `meterupd console --port slave` in-process until the
// test ends; the cleanup checks it stopped cleanly.
func startConsole(t *testing.T, dir, slave string, flags ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cout := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--state", dir, "console", "--port", slave}, flags...), cout, cout)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("console: %v\n%s", err, cout.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the console did not stop")
		}
	})
	return cout
}
