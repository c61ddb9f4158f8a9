package headend

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"meterupd/delta"
	"meterupd/manifest"
	"meterupd/shadow"
)

// fakeNode is a node that speaks the contract of docs/mqtt.md through
// package shadow's documents and nothing else: it gates desired documents
// by epoch and version, acts once on a job, reports with a rising seq and
// resends a report until the replica accepts it. It installs nothing: a
// package's job ends committed on version next, or rolled back (result
// 100) when fail is set. Until the node's own MQTT link lands, it stands
// for it in the head-end's tests.
type fakeNode struct {
	t        testing.TB
	id       string
	next     string // the version a job takes it to
	fail     bool
	fetch    bool  // fetch and check a URL package (withFetch)
	formats  []int // the delta formats its requests advertise (withDeltaFormats)
	c        paho.Client
	mu       sync.Mutex
	gate     shadow.Gate
	seq      uint64
	version  string
	acted    map[string]int // job → times acted on
	acked    uint64
	ignored  int // duplicate or stale documents
	packages []shadow.PackageRef
}

// withFetch makes the node fetch a URL package with a Range request and
// check its size and SHA-256 before it "installs" it; a mismatch or a
// failed fetch ends the job with result 5 or 7.
func withFetch(n *fakeNode) { n.fetch = true }

// withDeltaFormats makes the node's requests advertise the node-format
// versions vs instead of every one this build applies; none: a node from
// before the field.
func withDeltaFormats(vs ...int) func(*fakeNode) { return func(n *fakeNode) { n.formats = vs } }

func startFakeNode(t testing.TB, broker, id, version, next string, fail bool, options ...func(*fakeNode)) *fakeNode {
	t.Helper()
	n := &fakeNode{t: t, id: id, next: next, fail: fail, version: version, acted: map[string]int{}, formats: delta.NodeFormats}
	for _, o := range options {
		o(n)
	}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetOrderMatters(true)
	n.c = paho.NewClient(opts)
	if tok := n.c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("node %s: connect: %v", id, tok.Error())
	}
	// Subscribed before the first report, so its accepted is not missed;
	// the persistent session keeps the subscriptions over reconnects.
	for topic, h := range map[string]paho.MessageHandler{"accepted": n.onAccepted, "delta": n.onDelta} {
		if tok := n.c.Subscribe("state/"+id+"/update/"+topic, 1, h); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("node %s: subscribe: %v", id, tok.Error())
		}
	}
	t.Cleanup(func() { n.c.Disconnect(0) })
	n.report("", "idle", 0)
	return n
}

func (n *fakeNode) onDelta(_ paho.Client, m paho.Message) {
	d, err := shadow.ParseDelta(m.Payload(), 0)
	if err != nil {
		n.report("", "idle", shadow.ResultBadDocument)
		return
	}
	n.mu.Lock()
	v := n.gate.Check(d)
	if v != shadow.Act {
		n.ignored++
		n.mu.Unlock()
		return
	}
	n.gate = n.gate.After(d)
	job := d.Desired.Job
	if d.Desired.Manifest != nil && d.Desired.Package == nil && !d.Desired.Cancel {
		// The request flow: the node's characteristics for the manifest.
		req := manifest.Request{DeviceType: "em300", Hardware: 1, Versions: map[string]string{"system": n.version}, Schemas: manifest.Schemas,
			DeltaFormats: n.formats}
		n.mu.Unlock()
		b, _ := json.Marshal(map[string]any{"job": job, "request": req})
		n.c.Publish("state/"+n.id+"/request", 1, false, b)
		return
	}
	if d.Desired.Package != nil {
		n.packages = append(n.packages, *d.Desired.Package)
	}
	if d.Desired.Package == nil || d.Desired.Cancel {
		n.mu.Unlock()
		return
	}
	n.acted[job]++
	n.mu.Unlock()
	ref := *d.Desired.Package
	go func() {
		n.report(job, "downloading", 0)
		if n.fetch && ref.URL != "" {
			if res := fetchCheck(ref); res != shadow.ResultInitial {
				n.report(job, "failed", res)
				return
			}
		}
		if n.fail {
			n.report(job, "rolled-back", shadow.ResultRolledBack)
			return
		}
		n.mu.Lock()
		n.version = n.next
		n.mu.Unlock()
		n.report(job, "committed", shadow.ResultSuccess)
	}()
}

func (n *fakeNode) onAccepted(_ paho.Client, m paho.Message) {
	var a struct {
		Seq uint64 `json:"seq"`
	}
	if json.Unmarshal(m.Payload(), &a) == nil {
		n.mu.Lock()
		n.acked = max(n.acked, a.Seq)
		n.mu.Unlock()
	}
}

// report publishes the next report and resends it until it is accepted.
func (n *fakeNode) report(job, state string, result shadow.Result) {
	n.mu.Lock()
	n.seq++
	seq := n.seq
	doc := map[string]any{"seq": seq, "reported": map[string]any{
		"job": job, "state": state, "result": result, "reason": "",
		"progress": map[string]int{"done": 0, "total": 0},
		"running":  map[string]string{"slot": "a", "version": n.version},
		"slots":    map[string]any{}, "agent": "fake", "device_type": "em300",
	}}
	n.mu.Unlock()
	b, _ := json.Marshal(doc)
	for range 200 {
		n.c.Publish("state/"+n.id+"/update", 1, false, b).WaitTimeout(5 * time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			n.mu.Lock()
			ok := n.acked >= seq
			n.mu.Unlock()
			if ok {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	n.t.Errorf("node %s: report %d never accepted", n.id, seq)
}

func (n *fakeNode) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("%s v%s gate=%+v acted=%v", n.id, n.version, n.gate, n.acted)
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchCheck fetches a package as a node does (Range, 206) and checks it.
func fetchCheck(ref shadow.PackageRef) shadow.Result {
	req, err := http.NewRequest("GET", ref.URL, nil)
	if err != nil {
		return shadow.ResultInvalidURI
	}
	req.Header.Set("Range", "bytes=0-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return shadow.ResultInvalidURI
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return shadow.ResultInvalidURI
	}
	h := sha256.New()
	got, err := io.Copy(h, io.LimitReader(resp.Body, ref.Size+1))
	if err != nil || got != ref.Size || hex.EncodeToString(h.Sum(nil)) != ref.SHA256 {
		return shadow.ResultIntegrity
	}
	return shadow.ResultInitial
}
