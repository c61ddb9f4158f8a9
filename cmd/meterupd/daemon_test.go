package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/internal/syncbuf"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/node"
)

// daemon starts `meterupd --state dir run` in-process and returns once it
// answers on its socket; the cleanup stops it and checks it exited
// cleanly.
func daemon(t *testing.T, dir string) (stop func() error, out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--state", dir, "run"}, out, out) }()
	waitDaemon(t, filepath.Join(dir, "meterupd.sock"), done)
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("the daemon did not stop within 10 s")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("daemon: %v\n%s", err, out.String())
		}
	})
	return stop, out
}

func waitDaemon(t *testing.T, sock string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the daemon stopped at once: %v", err)
		default:
		}
		if c, err := localapi.Dial(context.Background(), sock, "test"); err == nil {
			var st agent.Status
			err := c.Call(context.Background(), localapi.Request{Cmd: "status"}, nil, &st)
			c.Close()
			if err == nil && st.State != "" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the daemon did not answer within 10 s")
}

// syncBuffer is a process's output, read while it runs.
type syncBuffer = syncbuf.Buffer

// waitState polls status until its state is want.
func waitState(t *testing.T, dir, want string) agent.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var st agent.Status
	for time.Now().Before(deadline) {
		st = status(t, dir)
		if st.State == want {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("state %q, want %q: %+v", st.State, want, st)
	return st
}

// TestDaemonAcceptance: while `run` is up, status --json, journal, install
// (performed by the daemon, the client shows progress and the result),
// rollback and version work from another client; a second run is refused;
// a stop exits cleanly.
func TestDaemonAcceptance(t *testing.T) {
	dir := newNode(t)
	stop, dout := daemon(t, dir)
	if _, err := mu(t, dir, "run"); err == nil || !strings.Contains(err.Error(), "already runs on this node") {
		t.Errorf("second run: %v, want a refusal", err)
	}
	if st := status(t, dir); st.State != agent.StateIdle || st.Running.Slot != "A" || st.Agent == "" {
		t.Errorf("status through the daemon: %+v", st)
	}
	img, sha := writeImage(t, "2.0.0", 200000)
	out := mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	for _, want := range []string{"writing slot B: 100% (200000 of 200000 bytes)", "trial armed", "started slot B", "the daemon carries on"} {
		if !strings.Contains(out, want) {
			t.Errorf("install through the daemon lacks %q:\n%s", want, out)
		}
	}
	// The daemon restarts the agent after the (simulated) reboot: the
	// trial passes its health checks and is committed, with nobody
	// starting anything.
	st := waitState(t, dir, agent.StateCommitted)
	if st.Running.Slot != "B" || st.Slots["B"].Version != "2.0.0" || st.Result != agent.ResultSuccess {
		t.Fatalf("after the install: %+v", st)
	}
	if out := mustMU(t, dir, "journal"); !strings.Contains(out, "last committed 2.0.0") {
		t.Errorf("journal through the daemon:\n%s", out)
	}
	if out := mustMU(t, dir, "version"); !strings.Contains(out, "daemon: meterupd") || !strings.Contains(out, "board sim") {
		t.Errorf("version:\n%s", out)
	}
	mustMU(t, dir, "rollback", "--reason", "technician test")
	st = waitState(t, dir, agent.StateRolledBack)
	if st.Running.Slot != "A" || st.Slots["B"].State != "bad" || st.Result != agent.ResultRolledBack {
		t.Fatalf("after rollback: %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, dout.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "meterupd.sock")); err == nil {
		t.Errorf("the socket outlived the daemon")
	}
	// With the daemon gone the commands work directly again.
	if st := status(t, dir); st.Running.Slot != "A" {
		t.Errorf("direct status after the daemon: %+v", st)
	}
}

// TestSameOutputBothWays: a person sees the same output whether the daemon
// runs or not.
func TestSameOutputBothWays(t *testing.T) {
	img, sha := writeImage(t, "2.0.0", 200000)
	// Standard output: the logs on standard error are the daemon's own
	// when it runs.
	stdout := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(context.Background(), append([]string{"--state", dir}, args...), &out, &errb); err != nil {
			t.Fatalf("meterupd %v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	outputs := func(t *testing.T, dir string) []string {
		return []string{
			stdout(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--no-activate"),
			stdout(t, dir, "status"),
			stdout(t, dir, "journal"),
			stdout(t, dir, "rollback", "--reason", "not today"),
			stdout(t, dir, "status", "--json"),
		}
	}
	direct := outputs(t, newNode(t))
	dir := newNode(t)
	daemon(t, dir)
	viaDaemon := outputs(t, dir)
	for i := range direct {
		if direct[i] != viaDaemon[i] {
			t.Errorf("output %d differs:\ndirect:\n%s\nthrough the daemon:\n%s", i, direct[i], viaDaemon[i])
		}
	}
}

// TestEventsFollowAnInstall: `meterupd events` shows the phases and the
// progress of an install at least at every erase block, live.
func TestEventsFollowAnInstall(t *testing.T) {
	dir := newNode(t)
	daemon(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	evOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--state", dir, "events"}, evOut, evOut) }()
	for !strings.Contains(evOut.String(), "status: idle") {
		time.Sleep(10 * time.Millisecond)
	}
	img, sha := writeImage(t, "2.0.0", 262144)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	waitState(t, dir, agent.StateCommitted)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(evOut.String(), "state: committed") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("events: %v", err)
	}
	out := evOut.String()
	// 262144 bytes in 64 KiB erase blocks: four progress events.
	for _, want := range []string{"installing job local-", "65536/262144 bytes (25%)", "131072/262144", "196608/262144", "262144/262144",
		"reboot: activating", "started slot B", "state: trial", "state: committed"} {
		if !strings.Contains(out, want) {
			t.Errorf("events lack %q:\n%s", want, out)
		}
	}
}

// TestDaemonStopsMidInstallAndResumes: SIGTERM in the middle of an install
// stops the daemon (a built binary) with exit status 0 within seconds; the
// next run resumes the install where it was.
func TestDaemonStopsMidInstallAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "meterupd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "node")
	mustMU(t, dir, "sim", "init", dir, "--image-size", "262144")
	var dout syncBuffer
	cmd := exec.Command(bin, "--state", dir, "run")
	cmd.Stdout, cmd.Stderr = &dout, &dout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitDaemon(t, filepath.Join(dir, "meterupd.sock"), exited)

	// Follow the events; at the first progress of the install, SIGTERM.
	c, err := localapi.Dial(context.Background(), filepath.Join(dir, "meterupd.sock"), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The biggest image the sim's slot takes: 128 erase blocks to write.
	img, sha := writeImage(t, "2.0.0", 8<<20)
	go mu(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0")
	var signalled time.Time
	c.Call(context.Background(), localapi.Request{Cmd: "events"}, func(ev localapi.Event) {
		if signalled.IsZero() && ev.Status.State == agent.StateInstalling && ev.Status.Progress.Done > 0 {
			signalled = time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}, nil)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon after SIGTERM: %v\n%s", err, dout.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon still running 10 s after SIGTERM\n%s", dout.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(signalled))
	st := status(t, dir)
	if st.State != agent.StateInstalling || st.Progress == nil || st.Progress.Done == 0 || st.Progress.Done >= st.Progress.Total {
		t.Fatalf("after SIGTERM mid-install: %+v %+v, want an install in progress", st.Update, st.Progress)
	}
	stopped := st.Progress.Done
	// The next run resumes it (and the trial commits).
	out := mustMU(t, dir, "run", "--once")
	st = status(t, dir)
	if st.State != agent.StateCommitted || st.Slots["B"].Version != "2.0.0" {
		t.Fatalf("after the next run: %+v\n%s", st, out)
	}
	t.Logf("install stopped at %d of %d bytes and resumed", stopped, 8<<20)
}

// TestTwoClientsAndAClientThatLeaves (RELIABILITY case 58): clients at
// once get their answers in order; a client that disconnects in the middle
// of an install does not stop it; a socket left behind by a crash does not
// keep the daemon from starting.
func TestTwoClientsAndAClientThatLeaves(t *testing.T) {
	dir := newNode(t)
	// A socket file left by a daemon that crashed.
	sock := filepath.Join(dir, "meterupd.sock")
	ln, err := localapi.Listen(sock, -1, false)
	if err != nil {
		t.Fatal(err)
	}
	crashLeftovers(t, ln, sock)
	daemon(t, dir)

	img, sha := writeImage(t, "2.0.0", 8<<20)
	c, err := localapi.Dial(context.Background(), sock, "leaver")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := true
	err = c.Call(ctx, localapi.Request{Cmd: "install", Paths: []string{img}, SHA256: sha, Version: "2.0.0", NoActivate: true}, func(localapi.Event) {
		if first {
			first = false
			cancel() // leave after the first event
		}
	}, nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("leaving client: %v", err) // nil: the install was quicker than the leaving
	}
	// Meanwhile, and after, other clients are answered.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := mu(t, dir, "status", "--json"); err != nil {
				t.Errorf("status while installing: %v", err)
			}
		}()
	}
	wg.Wait()
	st := waitState(t, dir, agent.StateInstalled)
	if st.Slots["B"].State != "ready" {
		t.Errorf("install of the client that left: %+v", st)
	}
	// Commands queue behind each other and each gets its answer.
	errs := make(chan error, 2)
	go func() { _, err := mu(t, dir, "activate"); errs <- err }()
	go func() { _, err := mu(t, dir, "journal"); errs <- err }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent command: %v", err)
		}
	}
	waitState(t, dir, agent.StateCommitted)
}

// crashLeftovers closes ln without removing its socket file, as a killed
// daemon leaves it.
func crashLeftovers(t *testing.T, ln interface{ Close() error }, sock string) {
	t.Helper()
	saved, err := os.ReadDir(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	_ = saved
	tmp := sock + ".keep"
	if err := os.Link(sock, tmp); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := os.Rename(tmp, sock); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no leftover socket: %v", err)
	}
}

// TestCorruptConfigurationDegrades (issue 9): a damaged keys.pem or
// identity.json does not stop the node: run and status work and say what
// is wrong; a signed install is refused with a sentence; nothing changes.
func TestCorruptConfigurationDegrades(t *testing.T) {
	dir, pkg := chainPkgNode(t)
	for _, f := range []string{"keys.pem", "identity.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("-----BEGIN garbage\x00\xff{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, dir)
	out := mustMU(t, dir, "run", "--once")
	if !strings.Contains(out, "agent at rest on slot A") {
		t.Errorf("run --once with a damaged configuration:\n%s", out)
	}
	if out := mustMU(t, dir, "status"); !strings.Contains(out, "CONFIGURATION PROBLEM: the trusted keys in") || !strings.Contains(out, "CONFIGURATION PROBLEM: the identity in") {
		t.Errorf("status does not show the problems:\n%s", out)
	}
	if st := status(t, dir); len(st.Problems) != 2 {
		t.Errorf("status --json problems = %q, want two", st.Problems)
	}
	_, err := mu(t, dir, "install", pkg)
	if err == nil || !strings.Contains(err.Error(), "cannot be read") || !strings.Contains(err.Error(), "refuses signed packages") {
		t.Fatalf("signed install with damaged keys: %v", err)
	}
	sameSnapshot(t, "damaged configuration", before, snapshot(t, dir))
	// The daemon starts too, and says the same.
	daemon(t, dir)
	if st := status(t, dir); len(st.Problems) != 2 {
		t.Errorf("daemon status problems = %q", st.Problems)
	}
}

// TestAbandonedInstallFailsClearly (issue 9): an install the agent
// abandons exits non-zero with one sentence and the node's true state,
// whether the daemon runs or not.
func TestAbandonedInstallFailsClearly(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "random.delta")
	b := make([]byte, 70000)
	rand.Read(b)
	if err := os.WriteFile(junk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, sha := writeImage(t, "2.0.0", 262144)
	for _, viaDaemon := range []bool{false, true} {
		dir := newNode(t)
		if viaDaemon {
			daemon(t, dir)
		}
		out, err := mu(t, dir, "install", "--delta", junk, "--sha256", sha, "--version", "2.0.0")
		if err == nil || !strings.Contains(err.Error(), "install abandoned") || !strings.Contains(err.Error(), "still runs version 1.0.0 in slot A") {
			t.Errorf("daemon %v: abandoned install: %v\n%s", viaDaemon, err, out)
		}
		if st := status(t, dir); st.State != agent.StateFailed || st.Running.Version != "1.0.0" || st.Result != agent.ResultFailed {
			t.Errorf("daemon %v: status after an abandoned install: %+v", viaDaemon, st)
		}
	}
}

// TestAbandonedSignedPackageFails (issue 9): a signed package whose install
// the agent abandons (a delta that is random bytes, with a valid digest and
// signature) exits non-zero, not "package accepted".
func TestAbandonedSignedPackageFails(t *testing.T) {
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, key.Public())
	items, payloads := chainItems(t)
	junk := make([]byte, 5000)
	rand.Read(junk)
	items, payloads = items[:1], [][]byte{junk}
	items[0].Size, items[0].Digest = uint64(len(junk)), digest(junk)
	pkg := writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 7, Items: items}, payloads, nil)
	out, err := mu(t, dir, "install", pkg)
	if err == nil || !strings.Contains(err.Error(), "install abandoned") || !strings.Contains(err.Error(), "still runs version 1.0 in slot A") || strings.Contains(out, "package accepted") {
		t.Fatalf("abandoned signed package: %v\n%s", err, out)
	}
}

// TestSubcommandHelp (issue 9): COMMAND --help prints the command's usage
// and succeeds.
func TestSubcommandHelp(t *testing.T) {
	for _, c := range []string{"install", "status", "rollback", "run", "events", "version", "journal"} {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{c, "--help"}, &out, &errb)
		if err != nil || !strings.HasPrefix(out.String(), "usage: meterupd "+c) {
			t.Errorf("%s --help = %v, stdout %q, stderr %q", c, err, out.String(), errb.String())
		}
	}
}

// TestStatusJSONNames: status --json has the documented lowercase names
// (docs/status.md) and none of the persisted types' Go names.
func TestStatusJSONNames(t *testing.T) {
	dir := newNode(t)
	out := mustMU(t, dir, "status", "--json")
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"state", "result", "running", "slots", "agent", "board", "primary", "boot", "sequence_floor", "journal"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status --json lacks %q:\n%s", k, out)
		}
	}
	for k := range m {
		if strings.ToLower(k) != k {
			t.Errorf("status --json has %q, not lowercase", k)
		}
	}
	if strings.Contains(out, `"ID"`) || strings.Contains(out, `"Code"`) || strings.Contains(out, `"Checks"`) {
		t.Errorf("status --json shows persisted Go names:\n%s", out)
	}
}

// TestIdleDaemonShowsLife: an idle daemon's owner goroutine keeps showing
// signs of life (what feeds the service watchdog); a stopped one does not.
func TestIdleDaemonShowsLife(t *testing.T) {
	dir := newNode(t)
	var mu sync.Mutex
	n := 0
	d := node.NewDaemon(node.Config{StateDir: dir})
	d.AliveEvery = 5 * time.Millisecond
	d.Alive = func() { mu.Lock(); n++; mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitDaemon(t, filepath.Join(dir, "meterupd.sock"), done)
	mu.Lock()
	first := n
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	idle := n - first
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if idle < 5 {
		t.Errorf("an idle daemon showed life %d times in 200 ms at a 5 ms period", idle)
	}
}

// TestInstallDuringTrialIsRefused (issue 9): an install while a set is on
// trial is refused and changes nothing; with --commit-trial the trial is
// committed first.
func TestInstallDuringTrialIsRefused(t *testing.T) {
	v2, sha2 := writeImage(t, "2.0.0", 262144)
	v3, sha3 := writeImage(t, "3.0.0", 262144)
	dir := newNode(t)
	mustMU(t, dir, "install", v2, "--sha256", sha2, "--version", "2.0.0") // the node reboots into the trial of B
	before := status(t, dir)
	out, err := mu(t, dir, "install", v3, "--sha256", sha3, "--version", "3.0.0")
	if err == nil || !strings.Contains(err.Error(), "on trial") {
		t.Fatalf("install during a trial: %v\n%s", err, out)
	}
	if after := status(t, dir); after.State != before.State || after.Slots["B"].Version != "2.0.0" || after.Slots["A"].Version != "1.0.0" {
		t.Fatalf("a refused install changed the node: %+v → %+v", before, after)
	}
	mustMU(t, dir, "install", v3, "--sha256", sha3, "--version", "3.0.0", "--commit-trial", "--no-activate")
	st := status(t, dir)
	if st.Slots["B"].Version != "2.0.0" || st.Slots["B"].State != "good" || st.Update == nil || st.Update.Version != "3.0.0" || st.Update.Target != "A" {
		t.Fatalf("after --commit-trial: %+v", st)
	}
}
