package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/internal/brokertest"
	"meterupd/manifest"
	"meterupd/mqttlink"
)

// pkgServer serves a package file with Range requests and counts the
// bytes it sends.
type pkgServer struct {
	data []byte
	sent atomic.Int64
}

func (s *pkgServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &countingWriter{ResponseWriter: w, n: &s.sent}
	http.ServeContent(cw, r, "pkg", time.Unix(0, 0), strings.NewReader(string(s.data)))
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// mqttDaemon starts `meterupd --state dir run --mqtt URL --id ID` in-process.
func mqttDaemon(t *testing.T, dir, broker, id string) (stop func() error, out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--state", dir, "run", "--mqtt", broker, "--id", id}, out, out) }()
	waitDaemon(t, dir+"/meterupd.sock", done)
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("the daemon did not stop within 15 s")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("daemon: %v\n%s", err, out.String())
		}
	})
	return stop, out
}

// reports decodes the report documents a mosquitto_sub received.
func reports(t *testing.T, sub *brokertest.Sub) []mqttlink.Report {
	t.Helper()
	var out []mqttlink.Report
	for _, l := range sub.Lines() {
		var r mqttlink.Report
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("a report that is not the documented JSON: %v: %s", err, l)
		}
		out = append(out, r)
	}
	return out
}

// waitReport waits until a report satisfies ok.
func waitReport(t *testing.T, sub *brokertest.Sub, d time.Duration, what string, ok func(mqttlink.Report) bool) mqttlink.Report {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, r := range reports(t, sub) {
			if ok(r) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var states []string
	for _, r := range reports(t, sub) {
		states = append(states, fmt.Sprintf("%d:%s/%d %q", r.Seq, r.Reported.State, r.Reported.Result, r.Reported.Reason))
	}
	t.Fatalf("no report %s within %v; reports: %s", what, d, strings.Join(states, "; "))
	return mqttlink.Report{}
}

// TestRealMosquittoDrivesAnUpdate: a sim node under `meterupd run --mqtt`
// with Debian's mosquitto, driven only by mosquitto_pub and mosquitto_sub
// (clients independent of this code) and an HTTP file server, updates from
// a signed package to committed, reporting each state; the same document
// again, an older one, and a malformed one change nothing and are reported.
func TestRealMosquittoDrivesAnUpdate(t *testing.T) {
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, key.Public())
	items, payloads := chainItems(t)
	pkgPath := writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 7, Items: items}, payloads, nil)
	data, err := os.ReadFile(pkgPath)
	if err != nil {
		t.Fatal(err)
	}
	ps := &pkgServer{data: data}
	srv := httptest.NewServer(ps)
	defer srv.Close()

	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/N1/update")
	mqttDaemon(t, dir, b.URL, "N1")
	waitReport(t, sub, 20*time.Second, "of the idle node on connect", func(r mqttlink.Report) bool { return r.Reported.State == agent.StateIdle })

	sum := sha256.Sum256(data)
	doc := fmt.Sprintf(`{"epoch": 1, "version": 1, "desired": {"job": "job-1", "package": {"url": %q, "sha256": %q, "size": %d}, "activate": "now"}}`,
		srv.URL+"/em300.pkg", hex.EncodeToString(sum[:]), len(data))
	b.Pub("state/N1/update/delta", []byte(doc), true)
	done := waitReport(t, sub, 60*time.Second, "committed", func(r mqttlink.Report) bool {
		return r.Reported.Job == "job-1" && r.Reported.State == agent.StateCommitted
	})
	if done.Reported.Result != 1 || done.Reported.Running.Version != "3.0" {
		t.Fatalf("final report: result %d, running %+v; want 1 and 3.0", done.Reported.Result, done.Reported.Running)
	}
	// Every state on the way, in order, and seq strictly rising.
	var seen []string
	var last uint64
	for _, r := range reports(t, sub) {
		if r.Seq <= last {
			t.Errorf("report seq %d after %d", r.Seq, last)
		}
		last = r.Seq
		if r.Reported.Job == "job-1" && (len(seen) == 0 || seen[len(seen)-1] != r.Reported.State) {
			seen = append(seen, r.Reported.State)
		}
		if r.Reported.State == agent.StateCommitted && r.Reported.Job == "job-1" {
			break
		}
	}
	for _, want := range []string{"downloading", agent.StateDownloaded, agent.StateTrial, agent.StateCommitted} {
		if !contains(seen, want) {
			t.Errorf("states reported %v: no %q", seen, want)
		}
	}
	// The package's digests travel once: the node fetched only what it
	// needed, never more than the package.
	if ps.sent.Load() > int64(len(data)) {
		t.Errorf("the server sent %d bytes for a %d-byte package", ps.sent.Load(), len(data))
	}
	before := status(t, dir)

	// The same document again: a duplicate, reported, nothing changes.
	n := len(sub.Lines())
	b.Pub("state/N1/update/delta", []byte(doc), true)
	r := waitReport(t, sub, 20*time.Second, "of the duplicate", func(r mqttlink.Report) bool { return r.Seq > last && r.Reported.Result == 108 })
	if !strings.Contains(r.Reported.Reason, "duplicate") {
		t.Errorf("duplicate report reason %q", r.Reported.Reason)
	}
	// An older version, and a document that is not JSON.
	b.Pub("state/N1/update/delta", []byte(strings.Replace(doc, `"version": 1`, `"version": 0`, 1)), true)
	waitReport(t, sub, 20*time.Second, "of the stale document", func(r mqttlink.Report) bool {
		return r.Reported.Result == 108 && strings.Contains(r.Reported.Reason, "stale")
	})
	b.Pub("state/N1/update/delta", []byte(`{"epoch": 1, "version": 9, "desired": {"job": "j", "package": {"url": "file:///etc/passwd", "sha256": "00", "size": 1}}}`), true)
	waitReport(t, sub, 20*time.Second, "of the refused document", func(r mqttlink.Report) bool { return r.Reported.Result == 107 })
	if len(sub.Lines()) <= n {
		t.Fatal("no reports after the duplicate")
	}
	after := status(t, dir)
	if after.Running != before.Running || after.Slots["A"] != before.Slots["A"] || after.Slots["B"] != before.Slots["B"] || after.Floor != before.Floor {
		t.Errorf("documents that were refused changed the node:\nbefore %+v\nafter  %+v", before, after)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
