package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"meterupd/agent"
	"meterupd/boards/sim"
	"meterupd/headend"
	"meterupd/internal/brokertest"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/mqttlink"
	"meterupd/shadow"
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

// slowServer serves a package at a bounded rate, so a test can stop the
// node in the middle of the download.
type slowServer struct {
	pkgServer
	rate int // bytes per second
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &slowWriter{ResponseWriter: w, n: &s.sent, rate: s.rate, ctx: r.Context()}
	http.ServeContent(cw, r, "pkg", time.Unix(0, 0), strings.NewReader(string(s.data)))
}

type slowWriter struct {
	http.ResponseWriter
	n    *atomic.Int64
	rate int
	ctx  context.Context
}

func (c *slowWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), 1024)
		n, err := c.ResponseWriter.Write(p[:k])
		c.n.Add(int64(n))
		written += n
		if err != nil {
			return written, err
		}
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[k:]
		select {
		case <-time.After(time.Duration(k) * time.Second / time.Duration(c.rate)):
		case <-c.ctx.Done():
			return written, c.ctx.Err()
		}
	}
	return written, nil
}

// TestMQTTResumeAfterPowerCutMidDownload: the node is stopped in the
// middle of a download (as a power cut stops it) and started again: the
// download resumes from its verified blocks; the server sends the package
// once, plus at most the blocks in flight.
func TestMQTTResumeAfterPowerCutMidDownload(t *testing.T) {
	dir, data := fullImageNode(t, 8)
	ss := &slowServer{pkgServer: pkgServer{data: data}, rate: 128 << 10}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/N2/update")
	stop, _ := mqttDaemon(t, dir, b.URL, "N2")
	sum := sha256.Sum256(data)
	doc := fmt.Sprintf(`{"epoch": 3, "version": 1, "desired": {"job": "job-cut", "package": {"url": %q, "sha256": %q, "size": %d}, "activate": "command"}}`,
		srv.URL+"/p", hex.EncodeToString(sum[:]), len(data))
	b.Pub("state/N2/update/delta", []byte(doc), true)
	waitFor(t, 20*time.Second, "half the package sent", func() bool { return ss.sent.Load() > int64(len(data))/2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cut := ss.sent.Load()
	if cut >= int64(len(data)) {
		t.Fatalf("the whole package was sent before the cut (%d bytes)", cut)
	}
	mqttDaemon(t, dir, b.URL, "N2")
	waitReport(t, sub, 30*time.Second, "installed", func(r mqttlink.Report) bool {
		return r.Reported.Job == "job-cut" && r.Reported.State == agent.StateInstalled
	})
	extra := ss.sent.Load() - int64(len(data))
	t.Logf("package %d bytes; sent %d before the cut, %d in all (%d more than the package)", len(data), cut, ss.sent.Load(), extra)
	// Headers and the manifest are under 4 KiB; the rest may be one
	// window's partial block.
	if extra > 2*manifest.DefaultBlockSize {
		t.Errorf("after the cut the server sent %d bytes more than the package: more than a block again", extra)
	}
}

// TestMQTTRefusals: a tampered package and an oversize desired document
// are refused with a report, and change nothing on the node.
func TestMQTTRefusals(t *testing.T) {
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, key.Public())
	items, payloads := chainItems(t)
	pkgPath := writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 7, Items: items}, payloads, func(b []byte) []byte {
		b[600] ^= 1 // inside the signed manifest
		return b
	})
	data, err := os.ReadFile(pkgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&pkgServer{data: data})
	defer srv.Close()
	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/N3/update")
	mqttDaemon(t, dir, b.URL, "N3")
	waitReport(t, sub, 20*time.Second, "on connect", func(r mqttlink.Report) bool { return r.Reported.State == agent.StateIdle })
	before := snapshot(t, dir)
	sum := sha256.Sum256(data)
	b.Pub("state/N3/update/delta", []byte(fmt.Sprintf(`{"epoch": 1, "version": 1, "desired": {"job": "bad", "package": {"url": %q, "sha256": %q, "size": %d}}}`,
		srv.URL+"/p", hex.EncodeToString(sum[:]), len(data))), true)
	r := waitReport(t, sub, 20*time.Second, "of the tampered package", func(r mqttlink.Report) bool {
		return r.Reported.Job == "bad" && r.Reported.State == agent.StateFailed
	})
	if r.Reported.Result != 102 {
		t.Errorf("tampered package: result %d (%s), want 102", r.Reported.Result, r.Reported.Reason)
	}
	big := `{"epoch": 1, "version": 2, "desired": {"job": "` + strings.Repeat("x", 20000) + `"}}`
	b.Pub("state/N3/update/delta", []byte(big), true)
	waitReport(t, sub, 20*time.Second, "of the oversize document", func(r mqttlink.Report) bool {
		return r.Reported.Result == 107 && strings.Contains(r.Reported.Reason, "larger")
	})
	after := snapshot(t, dir)
	for p, h := range before {
		if strings.Contains(p, "journal") {
			continue // the gate of the tampered job's document is journalled
		}
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, d)
}

// TestMQTTTLSClientCertificate: the node connects to mosquitto over TLS
// with a client certificate (made in the test), and a node without one is
// turned away.
func TestMQTTTLSClientCertificate(t *testing.T) {
	pki := newPKI(t)
	b := brokertest.Start(t, brokertest.Options{CAFile: pki.ca, CertFile: pki.serverCert, KeyFile: pki.serverKey})
	dir := newNode(t)
	sub := b.Sub("state/N4/update")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--state", dir, "run", "--mqtt", b.URL, "--id", "N4",
			"--mqtt-ca", pki.ca, "--mqtt-cert", pki.clientCert, "--mqtt-key", pki.clientKey}, out, out)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v\n%s", err, out.String())
		}
	}()
	waitReport(t, sub, 20*time.Second, "over TLS", func(r mqttlink.Report) bool { return r.Reported.State == agent.StateIdle })
	// Without a client certificate the broker refuses the node.
	sub5 := b.Sub("state/N5/#")
	l, err := mqttlink.New(mqttlink.Config{Broker: b.URL, ID: "N5", CA: pki.ca, Node: refusingNode{}})
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lcancel()
	l.Run(lctx)
	if lines := sub5.Lines(); len(lines) > 0 {
		t.Fatalf("a node without a client certificate got through: %q", lines)
	}
}

// refusingNode is a node API that only knows link facts (a link that
// never gets connected needs nothing else).
type refusingNode struct{}

func (refusingNode) Handle(ctx context.Context, req localapi.Request, emit func(localapi.Event)) (any, error) {
	switch req.Cmd {
	case "link-facts":
		return agent.LinkFacts{}, nil
	case "events":
		<-ctx.Done()
		return nil, nil
	}
	return agent.Status{State: agent.StateIdle}, nil
}

type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// newPKI makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, typ string, der []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() (*ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	now := time.Now()
	caKey, _ := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ip bool) (string, string) {
		k, der := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		cder, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", cder), write(name+".key", "PRIVATE KEY", der)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, true)
	p.clientCert, p.clientKey = leaf("N4", 3, x509.ExtKeyUsageClientAuth, false)
	return p
}

// streamHeadEnd answers a node's block-stream requests from a package, as
// a head-end does, and counts the data bytes it sends.
type streamHeadEnd struct {
	data []byte
	sent atomic.Int64
	gets atomic.Int64
}

func (h *streamHeadEnd) run(t *testing.T, ctx context.Context, broker, id string) {
	t.Helper()
	topics := mqttlink.TopicsOf(id)
	for ctx.Err() == nil {
		o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("headend-" + id).SetAutoReconnect(false)
		lost := make(chan struct{})
		o.SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.Subscribe(topics.StreamGet, 1, func(c mqtt.Client, m mqtt.Message) {
			g, err := shadow.ParseStreamGet(m.Payload())
			if err != nil {
				return
			}
			h.gets.Add(1)
			for i := 0; i < len(g.Bitmap)*8; i++ {
				off := g.Offset + int64(i*g.BlockSize)
				if !g.Wants(i) || off >= int64(len(h.data)) {
					continue
				}
				d := shadow.StreamData{Stream: g.Stream, Offset: off, Data: h.data[off:min(int64(len(h.data)), off+int64(g.BlockSize))]}
				b, _ := d.Encode()
				h.sent.Add(int64(len(d.Data)))
				c.Publish(topics.StreamData, 1, false, b)
			}
		}).WaitTimeout(2 * time.Second)
		select {
		case <-ctx.Done():
			c.Disconnect(100)
			return
		case <-lost:
		}
	}
}

// TestMQTTStreamAcrossBrokerRestart: a node with no route to a file
// server takes its package over the in-band block stream; the broker
// restarts in the middle; the transfer resumes and the update installs.
func TestMQTTStreamAcrossBrokerRestart(t *testing.T) {
	dir, data := fullImageNode(t, 9)
	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/N6/update")
	he := &streamHeadEnd{data: data}
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	go he.run(t, hctx, b.URL, "N6")
	mqttDaemon(t, dir, b.URL, "N6")
	waitReport(t, sub, 20*time.Second, "on connect", func(r mqttlink.Report) bool { return r.Reported.State == agent.StateIdle })
	sum := sha256.Sum256(data)
	b.Pub("state/N6/update/delta", []byte(fmt.Sprintf(`{"epoch": 1, "version": 1, "desired": {"job": "stream-1", "package": {"stream": "em300-2.0", "sha256": %q, "size": %d}, "activate": "command"}}`,
		hex.EncodeToString(sum[:]), len(data))), true)
	waitFor(t, 20*time.Second, "a third of the package streamed", func() bool { return he.sent.Load() > int64(len(data))/3 })
	b.Restart() // no persistence: sessions, subscriptions and the retained document are gone
	sub = b.Sub("state/N6/update")
	b.Pub("state/N6/update/delta", []byte(fmt.Sprintf(`{"epoch": 1, "version": 1, "desired": {"job": "stream-1", "package": {"stream": "em300-2.0", "sha256": %q, "size": %d}, "activate": "command"}}`,
		hex.EncodeToString(sum[:]), len(data))), true)
	waitReport(t, sub, 60*time.Second, "installed", func(r mqttlink.Report) bool {
		return r.Reported.Job == "stream-1" && r.Reported.State == agent.StateInstalled
	})
	t.Logf("package %d bytes; the head-end streamed %d data bytes in %d requests", len(data), he.sent.Load(), he.gets.Load())
	// What was in flight when the broker went (one request's window,
	// 64 KiB at most) may be sent again; nothing else.
	if he.sent.Load() > int64(len(data))+64<<10 {
		t.Errorf("streamed %d bytes for a %d-byte package: more than one window again", he.sent.Load(), len(data))
	}
}

// TestMQTTEmbeddedBrokerScheduleAndRevocations: the node's link against
// the lab head-end's embedded broker (mochi-mqtt): a desired document that
// activates at a time leaves the set installed and scheduled (the agent
// keeps the time), and the head-end's retained revocation list reaches the
// node's console guard.
func TestMQTTEmbeddedBrokerScheduleAndRevocations(t *testing.T) {
	e, err := headend.NewEmbedded("127.0.0.1:0", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir := pkgNode(t, key.Public())
	items, payloads := chainItems(t)
	data, err := os.ReadFile(writePkg(t, key, &manifest.Manifest{Schema: 1, Sequence: 7, Items: items}, payloads, nil))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&pkgServer{data: data})
	defer srv.Close()
	var mu sync.Mutex
	var got []mqttlink.Report
	if err := e.Subscribe("state/N7/update", func(_ string, p []byte) {
		var r mqttlink.Report
		if json.Unmarshal(p, &r) == nil {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	seen := func(ok func(mqttlink.Report) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range got {
			if ok(r) {
				return true
			}
		}
		return false
	}
	mqttDaemon(t, dir, "tcp://"+e.Addr().String(), "N7")
	waitFor(t, 20*time.Second, "the idle report", func() bool { return seen(func(r mqttlink.Report) bool { return r.Reported.State == agent.StateIdle }) })
	at := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	sum := sha256.Sum256(data)
	ctx := context.Background()
	doc := fmt.Sprintf(`{"epoch": 2, "version": 1, "desired": {"job": "sched", "package": {"url": %q, "sha256": %q, "size": %d}, "activate": %q}}`,
		srv.URL+"/p", hex.EncodeToString(sum[:]), len(data), at)
	if err := e.Publish(ctx, "state/N7/update/delta", true, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a scheduled report", func() bool {
		return seen(func(r mqttlink.Report) bool {
			return r.Reported.Job == "sched" && r.Reported.State == agent.StateScheduled
		})
	})
	if st := status(t, dir); st.Update == nil || st.Update.Phase != agent.Installed || st.Running.Version != "1.0" {
		t.Fatalf("after a scheduled activation: %+v", st)
	}
	const cti = "00112233445566778899aabbccddeeff"
	if err := e.Publish(ctx, "state/N7/revoked", true, []byte(`{"revoked": ["`+cti+`"]}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the revocation list on the node", func() bool {
		b, err := os.ReadFile(dir + "/revoked.json")
		return err == nil && strings.Contains(string(b), cti)
	})
}

// fullImageNode provisions a sim node (1.0) and returns it with a signed
// package of sequence seq holding one full image 2.0 with block digests
// (schema 2): a payload large enough to cut a download in the middle of.
func fullImageNode(t *testing.T, seq uint64) (dir string, pkg []byte) {
	t.Helper()
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dir = pkgNode(t, key.Public())
	img := sim.Image(pkgImageSize, "2.0")
	it := manifest.Item{ID: "sys-2.0", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "2.0",
		DeviceTypes: []string{"em300"}, Payload: "sys-2.0.img", Size: uint64(len(img)), Digest: digest(img),
		TargetDigest: digest(img), TargetSize: uint64(len(img)), Thresholds: manifest.Thresholds{Stop: 1}}
	m := &manifest.Manifest{Schema: 1, Sequence: seq, Items: []manifest.Item{it}}
	if _, err := m.SetBlocks(0, img, manifest.DefaultBlockSize); err != nil {
		t.Fatal(err)
	}
	pkg, err = os.ReadFile(writePkg(t, key, m, [][]byte{img}, nil))
	if err != nil {
		t.Fatal(err)
	}
	return dir, pkg
}
