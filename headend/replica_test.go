package headend

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"meterupd/headend/internal/servicetest"
	"meterupd/shadow"
)

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// brokers runs f on the embedded broker and on a real mosquitto.
func brokers(t *testing.T, f func(t *testing.T, url string, link func() Link)) {
	t.Run("embedded", func(t *testing.T) {
		e, err := NewEmbedded("127.0.0.1:0", nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		f(t, "tcp://"+e.Addr().String(), func() Link { return e })
	})
	t.Run("mosquitto", func(t *testing.T) {
		url, _ := servicetest.Mosquitto(t)
		n := 0
		f(t, url, func() Link {
			n++
			x, err := Dial(context.Background(), DialOptions{URL: url, ClientID: "headend-" + string(rune('a'+n))}, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { x.Close() })
			return x
		})
	})
}

var pkgRef = &shadow.PackageRef{URL: "http://127.0.0.1:1/p.pkg", SHA256: strings.Repeat("ab", 32), Size: 10}

func TestReplica(t *testing.T) {
	brokers(t, func(t *testing.T, url string, link func() Link) {
		ctx := context.Background()
		s := openStore(t, filepath.Join(t.TempDir(), "h.db"), t0)
		r := &Replica{Store: s, Link: link(), Log: testLog(t), Now: func() time.Time { return t0 }}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// Wanted before the node ever connects: the retained document
		// reaches it when it comes (after a week, or now).
		if _, err := r.SetDesired(ctx, "n1", shadow.Desired{Job: "j1", Package: pkgRef}); err != nil {
			t.Fatal(err)
		}
		n := startFakeNode(t, url, "n1", "1.0", "2.0", false)
		eventually(t, 20*time.Second, "n1 committed", func() bool {
			got, err := s.Node(ctx, "n1")
			return err == nil && got.State == "committed" && got.Result == shadow.ResultSuccess && got.Version == "2.0"
		})
		n.mu.Lock()
		acted := n.acted["j1"]
		n.mu.Unlock()
		if acted != 1 {
			t.Fatalf("node acted on j1 %d times, want 1", acted)
		}

		// A stale report (a lower seq, replayed) changes nothing but is
		// confirmed, so a node stops resending.
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("replayer"))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		defer c.Disconnect(0)
		acks := make(chan string, 4)
		c.Subscribe("state/n1/update/accepted", 1, func(_ paho.Client, m paho.Message) { acks <- string(m.Payload()) }).Wait()
		c.Publish("state/n1/update", 1, false, `{"seq":1,"reported":{"state":"idle","running":{"version":"0.1"}}}`).Wait()
		select {
		case got := <-acks:
			if got != `{"seq":1}` {
				t.Fatalf("accepted = %s, want {\"seq\":1}", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stale report not confirmed")
		}
		if got, _ := s.Node(ctx, "n1"); got.Version != "2.0" || got.State != "committed" {
			t.Fatalf("after a stale report: %+v, want unchanged", got)
		}

		// The node's link message (retained; its last will says offline).
		c.Publish("state/n1/link", 1, true, `{"online": true, "agent": "fake"}`).Wait()
		eventually(t, 10*time.Second, "link recorded", func() bool {
			got, _ := s.Node(ctx, "n1")
			return got.Link == LinkOnline
		})
		c.Publish("state/n1/link", 1, true, `{"online": false}`).Wait()
		eventually(t, 10*time.Second, "offline recorded", func() bool {
			got, _ := s.Node(ctx, "n1")
			return got.Link == LinkOffline && got.Version == "2.0"
		})

		// A desired change published to the replica's topic by another
		// application: recorded, versioned, delivered.
		before, _ := s.Desired(ctx, "n1")
		c.Publish("state/n1/update", 1, false, `{"desired":{"job":"j1","cancel":true}}`).Wait()
		eventually(t, 10*time.Second, "desired change delivered", func() bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.gate.Version == before.Version+1
		})
		// A bad desired change is refused, and nothing is published.
		c.Publish("state/n1/update", 1, false, `{"desired":{"job":"j9","package":{"url":"file:///etc/passwd","sha256":"ab","size":1}}}`).Wait()
		time.Sleep(300 * time.Millisecond)
		if got, _ := s.Desired(ctx, "n1"); got.Version != before.Version+1 {
			t.Fatalf("desired version after a bad change = %d, want %d", got.Version, before.Version+1)
		}
	})
}

// TestReplicaRepublish: a broker that lost its retained messages gets the
// desired documents again from the store; a node that saw them already
// ignores the copies.
func TestReplicaRepublish(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), t0)
	url, kill := servicetest.Mosquitto(t) // persistence off: a restart loses all
	_ = kill
	x, err := Dial(ctx, DialOptions{URL: url, ClientID: "headend"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	r := &Replica{Store: s, Link: x, Log: testLog(t), Now: func() time.Time { return t0 }}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDesired(ctx, "n7", shadow.Desired{Job: "j7", Package: pkgRef}); err != nil {
		t.Fatal(err)
	}
	// Recorded in the store only (as after a broker restart): republished.
	if err := s.SetDeviceType(ctx, "n7", "em300"); err != nil {
		t.Fatal(err)
	}
	if err := r.Republish(ctx); err != nil {
		t.Fatal(err)
	}
	n := startFakeNode(t, url, "n7", "1.0", "2.0", false)
	eventually(t, 20*time.Second, "n7 committed", func() bool {
		got, _ := s.Node(ctx, "n7")
		return got.State == "committed"
	})
	if err := r.Republish(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "copy ignored", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.ignored >= 1
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.acted["j7"] != 1 {
		t.Fatalf("acted on j7 %d times, want 1", n.acted["j7"])
	}
}

// TestEmbeddedRestartKeepsDesired: the embedded broker forgets its retained
// messages when the head-end stops; the restarted head-end publishes them
// again from the store, so a node that comes back later gets what is
// wanted of it now.
func TestEmbeddedRestartKeepsDesired(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "h.db")
	cfg := Config{DB: db, Packages: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Log: testLog(t)}
	first, err := Serve(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := first.Replica.SetDesired(ctx, "late", shadow.Desired{Job: "j-late", Package: pkgRef})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Store.SetDeviceType(ctx, "late", "em300"); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second, err := Serve(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	n := startFakeNode(t, "tcp://"+second.MQTTAddr.String(), "late", "1.0", "2.0", false)
	eventually(t, 20*time.Second, "the node acted on the document of before the restart", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.gate == shadow.Gate{}.After(want) && n.acted["j-late"] == 1
	})
}
