package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/headend"
	"meterupd/internal/brokertest"
	"meterupd/internal/syncbuf"
)

// TestRealNodes: the head-end and three meters as an operator runs them,
// every one a real command: `headend serve` (its embedded broker, or
// mosquitto with --broker), three sim meters under `meterupd run --mqtt`,
// a tailored campaign in two waves made and started with `headend
// campaign create|start`. Release 2.0 carries the em300 delta in the
// newest node format and in version 1, and a broken em310 build. m1
// (em300) commits through the newest delta (the cheaper on these images);
// m2 (an em300 that advertises only version 1, as an older meter) commits
// through the version-1 delta: two groups, two packages, each applied; m3 (em310) fails its health check and rolls
// back. `meterupd status` on each meter and `headend nodes --json` and
// `campaign status --json` agree.
func TestRealNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/headend, cmd/meterupd and cmd/meterpkg, runs three node daemons")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "meterupd/cmd/headend", "meterupd/cmd/meterupd", "meterupd/cmd/meterpkg")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("embedded", func(t *testing.T) { realFleet(t, bin, "") })
	t.Run("mosquitto", func(t *testing.T) { realFleet(t, bin, brokertest.Start(t, brokertest.Options{}).URL) })
}

// daemon starts a long-running command; the test's end stops it with
// SIGTERM, as init does, and shows its output when the test failed.
func daemon(t *testing.T, name string, args ...string) *syncbuf.Buffer {
	t.Helper()
	out := new(syncbuf.Buffer)
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
		}
	})
	return out
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s after %v", what, d)
}

func realFleet(t *testing.T, bin, broker string) {
	dir := t.TempDir()
	cmd := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, name), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	db, pkgs := filepath.Join(dir, "headend.db"), filepath.Join(dir, "packages")
	he := func(args ...string) string { return cmd("headend", append(args, "--db", db, "--packages", pkgs)...) }
	at := func(name string) string { return filepath.Join(dir, name) }

	// The release: 2.0 for em300 (node format 2 and 1) and a broken em310 build.
	cmd("meterpkg", "keygen", "--alg", "ed25519", at("release"))
	for _, im := range [][]string{{"system-1.0.img", "1.0"}, {"system-2.0.img", "2.0"}, {"system-2.0-em310.img", "2.0", "--unhealthy"}} {
		cmd("meterupd", append([]string{"--state", at("scratch"), "sim", "image", at(im[0]), "--version", im[1], "--size", "1048576"}, im[2:]...)...)
	}
	spec := `{"sequence": 1, "vendor_id": 19781, "class_id": 3,
  "defaults": {"component": "system", "hardware": {"min": 1, "max": 4},
    "checks": [{"kind": "device-type"}, {"kind": "source-version"}, {"kind": "source-digest"}], "thresholds": {"skip": 0, "stop": 1}},
  "items": [
    {"id": "em300-1-2", "device_types": ["em300"], "format": "node", "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0.img"},
    {"id": "em300-1-2-v1", "device_types": ["em300"], "format": "node1", "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0.img"},
    {"id": "em310-1-2", "device_types": ["em310"], "format": "node", "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0-em310.img"}]}`
	if err := os.WriteFile(at("spec.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(pkgs, 0o755)
	cmd("meterpkg", "build", at("spec.json"), "-o", filepath.Join(pkgs, "release-2.0.pkg"), "--key", at("release.key.pem"))

	// The head-end, on free ports it reports.
	args := []string{"serve", "--db", db, "--packages", pkgs, "--http", "127.0.0.1:0", "--tick", "100ms"}
	if broker == "" {
		args = append(args, "--mqtt", "127.0.0.1:0")
	} else {
		args = append(args, "--broker", broker, "--client-id", "headend-test")
	}
	log := daemon(t, filepath.Join(bin, "headend"), args...)
	serving := regexp.MustCompile(`head-end serving.*`)
	waitUntil(t, 20*time.Second, "head-end serving", func() bool { return serving.MatchString(log.String()) })
	if broker == "" {
		m := regexp.MustCompile(`mqtt=(\S+)`).FindStringSubmatch(serving.FindString(log.String()))
		if m == nil {
			t.Fatalf("no mqtt address in %q", log)
		}
		broker = "tcp://" + m[1]
	}

	// Three meters on 1.0.
	meters := []struct{ id, devType, formats string }{{"m1", "em300", ""}, {"m2", "em300", "1"}, {"m3", "em310", ""}}
	for _, m := range meters {
		init := []string{"sim", "init", at(m.id), "--version", "1.0", "--image", at("system-1.0.img"),
			"--device-type", m.devType, "--keys", at("release.pub.pem")}
		if m.formats != "" {
			init = append(init, "--delta-formats", m.formats)
		}
		cmd("meterupd", init...)
		daemon(t, filepath.Join(bin, "meterupd"), "--state", at(m.id), "run", "--mqtt", broker, "--id", m.id)
	}
	var fleet []headend.Node
	nodes := func() []headend.Node {
		t.Helper()
		fleet = nil
		if err := json.Unmarshal([]byte(he("nodes", "--json")), &fleet); err != nil {
			t.Fatal(err)
		}
		return fleet
	}
	waitUntil(t, 30*time.Second, "three meters in the fleet table", func() bool { return len(nodes()) == 3 })

	// The campaign, through the operator's commands.
	if out := he("campaign", "create", "release-2.0.pkg", "--id", "release-2.0", "--select", "version=1.0", "--waves", "30%,100%", "--tailor"); !strings.Contains(out, "3 nodes in 2 waves") {
		t.Fatalf("campaign create: %s", out)
	}
	he("campaign", "start", "release-2.0")
	var st []headend.Status
	waitUntil(t, 90*time.Second, "campaign done", func() bool {
		st = nil
		if err := json.Unmarshal([]byte(he("campaign", "status", "release-2.0", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return len(st) == 1 && st[0].Campaign.State == headend.CampaignDone
	})
	if c := st[0].Counts; c[headend.TargetCommitted] != 2 || c[headend.TargetFailed] != 1 || len(st[0].Waves) != 2 || st[0].Waves[0].Nodes != 1 {
		t.Errorf("campaign status %+v, want 2 committed and 1 failed in waves of 1 and 2", st[0])
	}

	// What each meter says of itself, and what the head-end shows of it.
	want := map[string]struct {
		version, state string
		result         int
		item           string // the item of the last package the meter validated
	}{
		"m1": {"2.0", "committed", 1, "em300-1-2"},
		"m2": {"2.0", "committed", 1, "em300-1-2-v1"},
		"m3": {"1.0", "rolled-back", 100, "em310-1-2"},
	}
	for _, n := range nodes() {
		w := want[n.ID]
		if n.Version != w.version || n.State != w.state || int(n.Result) != w.result || n.DeviceType == "" {
			t.Errorf("headend nodes: %s %s %s %s result %d, want %s %s result %d", n.ID, n.DeviceType, n.Version, n.State, n.Result, w.version, w.state, w.result)
		}
		var s agent.Status
		if err := json.Unmarshal([]byte(cmd("meterupd", "--state", at(n.ID), "status", "--json")), &s); err != nil {
			t.Fatal(err)
		}
		items := []string{}
		for _, r := range s.Checks {
			items = append(items, r.Item)
		}
		last := ""
		if s.Last != nil {
			last = fmt.Sprint(s.Last.Code)
		}
		if s.Running.Version != w.version || s.Result != w.result || strings.Join(items, " ") != w.item || last != w.state {
			t.Errorf("meterupd status of %s: running %s, result %d, last %q, items %v; want %s, %d, %q, %s",
				n.ID, s.Running.Version, s.Result, last, items, w.version, w.result, w.state, w.item)
		}
	}
	// Three groups, three tailored packages beside the release.
	entries, _ := os.ReadDir(pkgs)
	if len(entries) != 4 {
		t.Errorf("package directory holds %d files, want the release and 3 tailored packages", len(entries))
	}
}
