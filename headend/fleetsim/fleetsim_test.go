package fleetsim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/headend"
	"meterupd/headend/internal/servicetest"
	"meterupd/manifest"
)

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFleetOnMosquitto runs 20 simulated nodes — the real daemon, link,
// store, delta apply, trial and health checks — through one campaign of a
// head-end on a real mosquitto; two of them (chosen by the seed) get the
// image that fails its health check. Every node's journal must agree with
// the head-end: 18 committed, 2 rolled back, nothing lost or done twice.
func TestFleetOnMosquitto(t *testing.T) {
	ctx := context.Background()
	broker, _ := servicetest.Mosquitto(t)
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := manifest.NewKeyring(key.Public())
	pem, _ := kr.MarshalPEM()
	pkgs := t.TempDir()
	if err := WriteRelease(filepath.Join(pkgs, "em300-2.0.pkg"), Release{}, key); err != nil {
		t.Fatal(err)
	}
	hcfg := headend.Config{DB: filepath.Join(t.TempDir(), "h.db"), Packages: pkgs, HTTPAddr: "127.0.0.1:0",
		BrokerURL: broker, ClientID: "headend", Tick: 100 * time.Millisecond, Log: testLog(t)}
	srv, err := headend.Serve(ctx, hcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Close() }()

	const n = 20
	f, err := New(Config{Nodes: n, Broker: broker, Dir: t.TempDir(), Fail: 0.1, Seed: 7, Keys: pem,
		ConnectRate: 50, Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	fails := 0
	for _, nd := range f.Nodes() {
		if nd.Fails {
			fails++
		}
	}
	if fails != 2 {
		t.Fatalf("%d failing nodes, want 2 (10%% of 20)", fails)
	}
	run := func(f *Fleet) (stop func()) {
		fctx, cancel := context.WithCancel(ctx)
		fdone := make(chan error, 1)
		go func() { fdone <- f.Run(fctx) }()
		return func() {
			cancel()
			if err := <-fdone; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run(f)
	defer func() { stop() }()
	eventually(t, time.Minute, "every node online at the head-end", func() bool {
		ns, _ := srv.Store.Nodes(ctx)
		k := 0
		for _, nd := range ns {
			if nd.Link == headend.LinkOnline && nd.Version == "1.0" {
				k++
			}
		}
		return k == n
	})
	c, err := srv.Campaigns.Create(ctx, headend.Campaign{ID: "em300-2.0", Package: "em300-2.0.pkg", Select: "version=1.0",
		Waves: []float64{10, 50, 100}, MaxInflight: 8, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Campaigns.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the campaign done", func() bool {
		s, _ := srv.Campaigns.Status(ctx, c.ID)
		return s.Campaign.State == headend.CampaignDone
	})
	// The whole fleet restarts (a simulator restart: every node powers
	// down and up), then the head-end (which publishes every desired
	// document again when it starts): no node acts on its job again.
	seqs := func() map[string]uint64 {
		ns, _ := srv.Store.Nodes(ctx)
		seq := map[string]uint64{}
		for _, nd := range ns {
			seq[nd.ID] = nd.Seq
		}
		return seq
	}
	reported := func(seq map[string]uint64, what string) {
		t.Helper()
		// A bound for a loaded machine (the nodes reconnect with their
		// link's backoff), not a speed: most runs take a second or two.
		var missing []string
		defer func() {
			if t.Failed() {
				t.Logf("%s: still missing %v", what, missing)
			}
		}()
		eventually(t, 2*time.Minute, what, func() bool {
			ns, _ := srv.Store.Nodes(ctx)
			missing = missing[:0]
			for _, nd := range ns {
				if nd.Seq <= seq[nd.ID] || nd.Link != headend.LinkOnline {
					missing = append(missing, fmt.Sprintf("%s(seq %d, %s)", nd.ID, nd.Seq, nd.Link))
				}
			}
			return len(ns) == n && len(missing) == 0
		})
	}
	seq := seqs()
	stop()
	if f, err = New(f.cfg); err != nil {
		t.Fatal(err)
	}
	stop = run(f)
	reported(seq, "a report of every node after the fleet's restart")
	time.Sleep(500 * time.Millisecond)
	seq = seqs()
	srv.Close()
	if srv, err = headend.Serve(ctx, hcfg); err != nil {
		t.Fatal(err)
	}
	reported(seq, "every node's answer to the desired document published again")
	targets, err := srv.Store.Targets(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := srv.Store.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outs := f.Outcomes(ctx, c.ID)
	s := Check(c.ID, outs, targets, nodes)
	t.Logf("check: %+v; first outcome %+v", s, outs[0])
	if s.Committed != n-2 || s.RolledBack != 2 || s.Lost != 0 || s.Duplicated != 0 || s.Failed != 0 || s.Unreachable != 0 || s.Wrapped != 0 {
		t.Fatalf("Check = %+v, want %d committed, 2 rolled back, nothing else", s, n-2)
	}
}
