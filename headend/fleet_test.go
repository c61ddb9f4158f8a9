package headend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"meterupd/headend/internal/servicetest"
)

// TestFleetScale runs one campaign over HEADEND_FLEET contract-speaking
// test nodes (each its own MQTT connection) on a real mosquitto, with the
// head-end on SQLite, and prints one line of what it measured. It is not
// part of make test (the fleet simulator with the real agent code will
// replace these nodes); run it with e.g.
//
//	HEADEND_FLEET=1000 go test -run TestFleetScale -v ./headend
func TestFleetScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HEADEND_FLEET"))
	if n <= 0 {
		t.Skip("set HEADEND_FLEET=N to run")
	}
	// Each node is a connection at both ends: raise the open-files limit
	// (inherited by mosquitto) to what the fleet needs.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(4*n+1024) {
		lim.Cur = min(lim.Max, uint64(4*n+1024))
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("open-files limit: %v", err)
		}
	}
	ctx := context.Background()
	broker, _ := servicetest.Mosquitto(t, "max_connections -1")
	pkgs := t.TempDir()
	os.WriteFile(filepath.Join(pkgs, "em300-2.0.pkg"), []byte("a package"), 0o644)
	srv, err := Serve(ctx, Config{DB: filepath.Join(t.TempDir(), "h.db"), Packages: pkgs, HTTPAddr: "127.0.0.1:0",
		BrokerURL: broker, ClientID: "headend", Tick: 200 * time.Millisecond, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fail := map[int]bool{}
	for i := 0; i < n; i += 100 {
		fail[i] = true // 1%
	}
	start := time.Now()
	for i := range n {
		startFakeNode(t, broker, fmt.Sprintf("f-%05d", i), "1.0", "2.0", fail[i])
	}
	eventually(t, 10*time.Minute, "all nodes recorded", func() bool {
		ns, _ := srv.Store.Nodes(ctx)
		return len(ns) == n
	})
	connected := time.Since(start)
	c, err := srv.Campaigns.Create(ctx, Campaign{ID: "em300-2.0", Package: "em300-2.0.pkg", Waves: []float64{1, 10, 100},
		MaxInflight: 200, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	srv.Campaigns.Start(ctx, c.ID)
	eventually(t, 20*time.Minute, "the campaign done", func() bool {
		s, _ := srv.Campaigns.Status(ctx, c.ID)
		return s.Campaign.State == CampaignDone
	})
	s, _ := srv.Campaigns.Status(ctx, c.ID)
	fmt.Printf("fleet-contract: nodes=%d broker=mosquitto store=sqlite committed=%d failed=%d unreachable=%d connect_seconds=%.1f campaign_seconds=%.1f\n",
		n, s.Counts[TargetCommitted], s.Counts[TargetFailed], s.Counts[TargetUnreachable], connected.Seconds(), time.Since(start).Seconds())
	if s.Counts[TargetCommitted]+s.Counts[TargetFailed] != n || s.Counts[TargetFailed] != len(fail) {
		t.Fatalf("counts %v, want %d committed and %d failed", s.Counts, n-len(fail), len(fail))
	}
}
