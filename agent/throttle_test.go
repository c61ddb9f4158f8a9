package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/throttle"
)

// sleepClock is a throttle clock that records the sleeps instead of
// sleeping.
type sleepClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (c *sleepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *sleepClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

// The install's bulk I/O goes through the throttle: the payload's copy
// into the store, the slot's writes and its hashing, each paced.
func TestInstallIsThrottled(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	sha := newCompatNode(t, dir)
	const size = 256 << 10
	clk := &sleepClock{now: time.Unix(1_800_000_000, 0)}
	thr := throttle.New(throttle.Options{BytesPerSec: 1 << 20, Burst: 64 << 10, Clock: clk})
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store"), Throttle: thr})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{
		Kind: agent.FullImage, Version: "2.0.0", SHA256: sha, Payloads: []string{filepath.Join(dir, "new.img")}}})
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("install: %v", err)
	}
	st := thr.Stats()
	if st.Bytes < 3*size {
		t.Errorf("throttle paced %d bytes, want at least %d (store copy, slot writes, slot hash)", st.Bytes, 3*size)
	}
	// 768 KiB at 1 MiB/s with a 64 KiB burst: about 0.69 s of waiting.
	if want := time.Duration(float64(3*size-(64<<10)) / (1 << 20) * float64(time.Second)); st.RateWait < want*9/10 {
		t.Errorf("rate wait %v, want about %v", st.RateWait, want)
	}
}

// The sim board configures the throttle from throttle.json; the gate file
// says when the metrology process closes an interval.
func TestSimBoardThrottleConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	newCompatNode(t, dir)
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.IOThrottle(); ok {
		t.Fatal("a node without throttle.json is throttled")
	}
	if err := os.WriteFile(filepath.Join(dir, "throttle.json"), []byte(`{"bytes_per_sec": 524288, "yield_every": 32768, "yield_ms": 3, "gate_file": "closing"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, ok := b.IOThrottle()
	if !ok || c.BytesPerSec != 524288 || c.YieldEvery != 32768 || c.Yield != 3*time.Millisecond || c.Closing == nil {
		t.Fatalf("throttle config: %+v %v", c, ok)
	}
	if c.Closing() {
		t.Error("closing without the gate file")
	}
	if err := os.WriteFile(filepath.Join(dir, "closing"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !c.Closing() {
		t.Error("not closing with the gate file")
	}
	if err := os.WriteFile(filepath.Join(dir, "throttle.json"), []byte(`{"yield_ms": -5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.IOThrottle(); ok {
		t.Error("a bad throttle.json is used")
	}
}
