package headend

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"meterupd/headend/internal/servicetest"
	"meterupd/internal/syncbuf"
	"meterupd/shadow"
)

// TestTwoInstances: two head-ends share one fleet through one mosquitto
// (a shared subscription) and one PostgreSQL. Instance A is the real
// `headend serve` binary; it is killed (SIGKILL) in the middle of a
// campaign and B finishes it: every node committed once, none lost, no
// job acted on twice.
func TestTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/headend and starts PostgreSQL and mosquitto")
	}
	ctx := context.Background()
	dsn := servicetest.Postgres(t)
	broker, _ := servicetest.Mosquitto(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "headend")
	if out, err := exec.Command("go", "build", "-o", bin, "meterupd/cmd/headend").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pkgs := filepath.Join(dir, "packages")
	os.Mkdir(pkgs, 0o755)
	os.WriteFile(filepath.Join(pkgs, "em300-2.0.pkg"), []byte("a package"), 0o644)

	b, err := Serve(ctx, Config{DB: dsn, Packages: pkgs, HTTPAddr: "127.0.0.1:0", BrokerURL: broker,
		ClientID: "headend-b", Shared: "headend", Tick: 100 * time.Millisecond, ResendAfter: 2 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	alog := new(syncBuffer)
	a := exec.Command(bin, "serve", "--db", dsn, "--packages", pkgs, "--http", "127.0.0.1:0", "--broker", broker,
		"--client-id", "headend-a", "--shared", "headend", "--tick", "100ms", "--resend-after", "2s", "--verbose",
		// Instances sharing a fleet give nodes one package URL (a load
		// balancer in the field; here B's server), not their own.
		"--public-url", "http://"+b.HTTPAddr.String())
	a.Stdout, a.Stderr = alog, alog
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	aDone := make(chan struct{})
	go func() { a.Wait(); close(aDone) }()
	killA := func() {
		a.Process.Kill()
		<-aDone
	}
	defer killA()
	eventually(t, 20*time.Second, "instance A up", func() bool { return bytes.Contains(alog.Bytes(), []byte("head-end serving")) })

	const n = 40
	nodes := make([]*fakeNode, n)
	for i := range nodes {
		nodes[i] = startFakeNode(t, broker, fmt.Sprintf("m-%03d", i), "1.0", "2.0", false, withFetch)
	}
	eventually(t, 30*time.Second, "all nodes recorded", func() bool {
		ns, _ := b.Store.Nodes(ctx)
		return len(ns) == n
	})
	c, err := b.Campaigns.Create(ctx, Campaign{ID: "em300-2.0", Package: "em300-2.0.pkg", Select: "version=1.0",
		Waves: []float64{10, 50, 100}, MaxInflight: 4, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Campaigns.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	committed := func() int {
		s, _ := b.Campaigns.Status(ctx, c.ID)
		return s.Counts[TargetCommitted]
	}
	eventually(t, 60*time.Second, "the campaign under way", func() bool { return committed() >= 8 })
	killA()
	// A had its share of the fleet's reports (the shared subscription).
	if got := bytes.Count(alog.Bytes(), []byte("report recorded")); got == 0 {
		t.Fatalf("instance A recorded no report: the fleet was not shared\n%s", alog.String())
	} else {
		t.Logf("instance A recorded %d reports before it was killed", got)
	}
	atKill := committed()
	t.Logf("instance A killed with %d of %d nodes committed", atKill, n)
	if atKill >= n {
		t.Fatalf("the campaign ended before A was killed")
	}

	eventually(t, 120*time.Second, "the campaign done", func() bool {
		s, _ := b.Campaigns.Status(ctx, c.ID)
		return s.Campaign.State == CampaignDone
	})
	s, _ := b.Campaigns.Status(ctx, c.ID)
	if s.Counts[TargetCommitted] != n {
		t.Fatalf("counts %v, want %d committed", s.Counts, n)
	}
	lost, dup := 0, 0
	for _, fn := range nodes {
		fn.mu.Lock()
		if fn.acted[c.ID] != 1 {
			dup++
			t.Errorf("node %s acted on the job %d times", fn.id, fn.acted[c.ID])
		}
		fn.mu.Unlock()
		got, err := b.Store.Node(ctx, fn.id)
		if err != nil || got.State != "committed" || got.Result != shadow.ResultSuccess || got.Version != "2.0" {
			lost++
			t.Errorf("node %s recorded as %+v, %v", fn.id, got, err)
		}
	}
	t.Logf("two instances: nodes=%d committed=%d lost=%d duplicated=%d", n, s.Counts[TargetCommitted], lost, dup)
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer = syncbuf.Buffer
