package headend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"meterupd/shadow"
)

// fakeClock is the clock seam: tests move it, nothing sleeps.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock    { c := &fakeClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func TestParseSelectorAndWaves(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Selector
		err  bool
	}{
		{"device_type=em300,version=1.0", Selector{DeviceType: "em300", Version: "1.0"}, false},
		{"", Selector{}, false},
		{"id=m-0", Selector{IDPrefix: "m-0"}, false},
		{"colour=red", Selector{}, true},
		{"device_type", Selector{}, true},
		{"version=", Selector{}, true},
	} {
		got, err := ParseSelector(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSelector(%q) = %+v, %v, want %+v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, tt := range []struct {
		in  string
		n   int
		err bool
	}{{"1%,10%,100%", 3, false}, {"100", 1, false}, {"10%,5%,100%", 0, true}, {"10%,50%", 0, true}, {"x", 0, true}, {"0%,100%", 0, true}, {"NaN,100", 0, true}} {
		got, err := ParseWaves(tt.in)
		if (err != nil) != tt.err || len(got) != tt.n {
			t.Errorf("ParseWaves(%q) = %v, %v, want %d waves (error %v)", tt.in, got, err, tt.n, tt.err)
		}
	}
}

type campaignRig struct {
	ctx   context.Context
	clock *fakeClock
	store Store
	m     *Campaigns
	url   string
	nodes map[string]*fakeNode
}

func newCampaignRig(t *testing.T, n int, failing map[int]bool, offline map[int]bool) *campaignRig {
	t.Helper()
	e, err := NewEmbedded("127.0.0.1:0", nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "em300-2.0.pkg"), []byte("a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &campaignRig{ctx: context.Background(), clock: newClock(t0), nodes: map[string]*fakeNode{}}
	r.store = openStore(t, filepath.Join(t.TempDir(), "h.db"), t0)
	rep := &Replica{Store: r.store, Link: e, Log: testLog(t), Now: r.clock.Now}
	pk := &Packages{Dir: dir}
	mux := http.NewServeMux()
	mux.Handle("GET /pkg/{name}", pk)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	r.m = &Campaigns{Store: r.store, Replica: rep, Packages: pk, BaseURL: hs.URL, Log: testLog(t), Now: r.clock.Now}
	rep.OnReport = r.m.OnReport
	if err := rep.Start(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.url = "tcp://" + e.Addr().String()
	for i := range n {
		id := fmt.Sprintf("m-%03d", i)
		if offline[i] {
			// Known to the head-end (it reported once), gone since.
			rp, raw := report(1, "idle", "1.0", 0)
			rp.DeviceType = "em300"
			if _, err := r.store.RecordReport(r.ctx, id, 1, rp, raw, r.clock.Now()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		r.nodes[id] = startFakeNode(t, r.url, id, "1.0", "2.0", failing[i], withFetch)
	}
	eventually(t, 20*time.Second, "all nodes reported", func() bool {
		ns, _ := r.store.Nodes(r.ctx)
		return len(ns) == n
	})
	return r
}

// run ticks until the campaign leaves running, waiting for the nodes'
// reports between ticks.
func (r *campaignRig) run(t *testing.T, id string, step time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := r.m.Tick(r.ctx); err != nil {
			t.Fatal(err)
		}
		s, err := r.m.Status(r.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Campaign.State != CampaignRunning {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign still running: %+v", s)
		}
		r.clock.Add(step)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCampaignWaves(t *testing.T) {
	r := newCampaignRig(t, 20, map[int]bool{7: true}, map[int]bool{15: true})
	c, err := r.m.Create(r.ctx, Campaign{ID: "em300-2.0", Package: "em300-2.0.pkg", Select: "device_type=em300,version=1.0",
		Waves: []float64{10, 50, 100}, MaxInflight: 3, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Start(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Start(r.ctx, c.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Start = %v, want ErrConflict", err)
	}
	s := r.run(t, c.ID, time.Minute)
	want := map[TargetState]int{TargetCommitted: 18, TargetFailed: 1, TargetUnreachable: 1}
	if s.Campaign.State != CampaignDone || fmt.Sprint(s.Counts) != fmt.Sprint(want) {
		t.Fatalf("campaign %s with %v, want done with %v", s.Campaign.State, s.Counts, want)
	}
	if got := []int{s.Waves[0].Nodes, s.Waves[1].Nodes, s.Waves[2].Nodes}; fmt.Sprint(got) != "[2 8 10]" {
		t.Fatalf("wave sizes %v, want [2 8 10]", got)
	}
	for id, n := range r.nodes {
		n.mu.Lock()
		if n.acted[c.ID] != 1 {
			t.Errorf("node %s acted on the job %d times, want 1", id, n.acted[c.ID])
		}
		n.mu.Unlock()
	}
	if got, _ := r.store.Node(r.ctx, "m-007"); got.Result != shadow.ResultRolledBack || got.Version != "1.0" {
		t.Fatalf("m-007 = %+v, want rolled back on 1.0", got)
	}
}

func TestCampaignHalts(t *testing.T) {
	// Two of the first wave's four fail: the first failure (25% > 20%)
	// halts it there; the second wave is never sent.
	r := newCampaignRig(t, 12, map[int]bool{1: true, 2: true}, nil)
	c, err := r.m.Create(r.ctx, Campaign{ID: "c-halt", Package: "em300-2.0.pkg", Waves: []float64{30, 100}, HaltAbove: 20, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Start(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	s := r.run(t, c.ID, time.Minute)
	if s.Campaign.State != CampaignHalted || s.Counts[TargetPending] != 8 || s.Counts[TargetFailed] < 1 {
		t.Fatalf("campaign %s %q with %v, want halted with 8 pending and a failure", s.Campaign.State, s.Campaign.Reason, s.Counts)
	}
	// Halted: ticks send nothing more.
	for range 3 {
		if err := r.m.Tick(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := r.m.Status(r.ctx, c.ID); s.Counts[TargetPending] != 8 {
		t.Fatalf("a halted campaign sent more: %v", s.Counts)
	}
	// Resumed after a look, once the wave's nodes sent it have finished:
	// the failures seen are accepted, it goes on (the others succeed).
	eventually(t, 20*time.Second, "the first wave finished", func() bool {
		s, _ := r.m.Status(r.ctx, c.ID)
		return s.Counts[TargetSent] == 0
	})
	if err := r.m.Resume(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if s := r.run(t, c.ID, time.Minute); s.Campaign.State != CampaignDone || s.Counts[TargetCommitted] != 10 {
		t.Fatalf("resumed campaign: %s %q %v, want done with 10 committed", s.Campaign.State, s.Campaign.Reason, s.Counts)
	}
	c2, err := r.m.Create(r.ctx, Campaign{ID: "c-halt2", Package: "em300-2.0.pkg", Select: "id=m-00", Waves: []float64{100}, HaltAbove: 20, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c = c2
	// Cancelled before it started: its ten nodes are never sent it.
	if err := r.m.Cancel(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	s, _ = r.m.Status(r.ctx, c.ID)
	if s.Campaign.State != CampaignCancelled || s.Counts[TargetCancelled] != 10 {
		t.Fatalf("after cancel: %s %v", s.Campaign.State, s.Counts)
	}
	if err := r.m.Tick(r.ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.m.Status(r.ctx, c.ID); s.Counts[TargetCancelled] != 10 || s.Counts[TargetSent] != 0 {
		t.Fatalf("a cancelled campaign sent: %v", s.Counts)
	}
}

func TestCampaignCreateRefuses(t *testing.T) {
	r := newCampaignRig(t, 2, nil, nil)
	for _, c := range []Campaign{
		{ID: "x", Package: "missing.pkg"},
		{ID: "x", Package: "../etc/passwd"},
		{ID: "x", Package: "em300-2.0.pkg", Select: "device_type=other"},
		{ID: "x", Package: "em300-2.0.pkg", Activate: "tomorrow"},
		{ID: "bad id", Package: "em300-2.0.pkg"},
	} {
		if _, err := r.m.Create(r.ctx, c); err == nil {
			t.Errorf("Create(%+v) accepted", c)
		}
	}
	if cs, _ := r.store.Campaigns(r.ctx); len(cs) != 0 {
		t.Fatalf("refused campaigns left %d records", len(cs))
	}
}

func TestCampaignPauseResume(t *testing.T) {
	r := newCampaignRig(t, 6, nil, nil)
	c, err := r.m.Create(r.ctx, Campaign{ID: "c-p", Package: "em300-2.0.pkg", MaxInflight: 2, WaveTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Pause(r.ctx, c.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("Pause(created) = %v, want ErrConflict", err)
	}
	r.m.Start(r.ctx, c.ID)
	if err := r.m.Tick(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Pause(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r.m.Tick(r.ctx)
		time.Sleep(20 * time.Millisecond)
	}
	s, _ := r.m.Status(r.ctx, c.ID)
	if s.Counts[TargetPending] != 4 {
		t.Fatalf("paused campaign: %v, want 4 still pending", s.Counts)
	}
	if err := r.m.Resume(r.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if s := r.run(t, c.ID, time.Second); s.Campaign.State != CampaignDone || s.Counts[TargetCommitted] != 6 {
		t.Fatalf("resumed campaign: %s %v", s.Campaign.State, s.Counts)
	}
}
