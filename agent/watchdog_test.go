package agent_test

// A trial that hangs is not a trial that stays (reliability case 60): a new set
// whose health check never returns is rolled back by the bootloader's
// count, through the agent's own reboot at the verdict deadline or, when
// even that hangs, through the watchdog it stops feeding. Time is a fake
// clock: nothing here sleeps for the deadlines.

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/clock/clocktest"
	"meterupd/slots"
)

const trialTimeout = 5 * time.Minute

// hangOn is a health check that never returns on slot s (it ignores its
// context, as a stuck read would) until the test ends.
func hangOn(t *testing.T, s hw.Slot) []agent.HealthCheck {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	return []agent.HealthCheck{{Name: "hangs", Check: func(_ context.Context, got hw.Slot, _ agent.SlotInfo) error {
		if got == s {
			<-stuck
		}
		return nil
	}}}
}

// armTrial installs 2.0.0 and reboots into the trial in B.
func armTrial(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	sha := newCompatNode(t, dir)
	err := bootSim(t, dir, func(a *agent.Agent) error {
		if err := a.Start(ctx); err != nil {
			return err
		}
		return a.Install(ctx, agent.InstallRequest{Activate: true, Item: agent.InstallItem{
			Kind: agent.FullImage, Version: "2.0.0", SHA256: sha, Payloads: []string{filepath.Join(dir, "new.img")}}})
	})
	if !errors.Is(err, hw.ErrRebooted) {
		t.Fatalf("install: %v, want a reboot into the trial", err)
	}
}

func TestTrialWithoutVerdictIsRolledBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	armTrial(t, dir)
	health := hangOn(t, hw.SlotB)
	clk := clocktest.New(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	for boot := 1; ; boot++ {
		if boot > 8 {
			t.Fatal("the hanging trial was not rolled back after 8 boots")
		}
		b, err := sim.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.Open(agent.Options{Board: b, Health: health, Clock: clk, TrialTimeout: trialTimeout})
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan error, 1)
		go func() { res <- a.Start(context.Background()) }()
		var err2 error
		select {
		case err2 = <-res: // no trial to wait for (the rollback)
		case <-waitTimers(clk):
			clk.Advance(trialTimeout)
			err2 = <-res
		}
		booted, _ := b.Boot().Booted()
		b.Close()
		if errors.Is(err2, hw.ErrRebooted) {
			t.Logf("boot %d: no verdict, rebooted; the bootloader started %s", boot, booted)
			continue
		}
		if err2 != nil {
			t.Fatalf("boot %d: %v", boot, err2)
		}
		break
	}
	bootSim(t, dir, func(a *agent.Agent) error {
		r := a.Record()
		if r.Last == nil || r.Last.Code != agent.RolledBack || r.Last.Slot != hw.SlotA || r.Slots[hw.SlotB].State != slots.Bad {
			t.Errorf("last %+v, B %s: want rolled back to A, B bad", r.Last, r.Slots[hw.SlotB].State)
		}
		return nil
	})
}

// waitTimers signals once the agent has set its verdict timer.
func waitTimers(clk *clocktest.Clock) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		if clk.WaitTimers(1, 10*time.Second) {
			close(c)
		}
	}()
	return c
}

// hungReboot is a board whose reboot never completes (a driver stuck in
// its shutdown hook): only the watchdog gets the node back.
type hungReboot struct {
	*sim.Board
	release chan struct{}
}

func (b *hungReboot) Reboot() error {
	<-b.release
	return errors.New("reboot hung")
}

// feedCounter counts feeds and signals each.
type feedCounter struct {
	hw.Watchdog
	mu  sync.Mutex
	n   int
	fed chan struct{}
}

func (f *feedCounter) Feed() error {
	if err := f.Watchdog.Feed(); err != nil {
		return err
	}
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	f.fed <- struct{}{}
	return nil
}

func (f *feedCounter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func TestWatchdogResetsAHangingTrial(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	armTrial(t, dir)
	sb, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	leftB := func() int {
		bs, err := sb.Boot().Load()
		if err != nil {
			t.Fatal(err)
		}
		return bs.Left[hw.SlotB]
	}
	before := leftB()
	clk := clocktest.New(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	b := &hungReboot{Board: sb, release: make(chan struct{})}
	swd := sim.NewWatchdog(sb, clk)
	defer swd.Close()
	if err := swd.SetTimeout(time.Minute); err != nil {
		t.Fatal(err)
	}
	wd := &feedCounter{Watchdog: swd, fed: make(chan struct{}, 64)}
	a, err := agent.Open(agent.Options{Board: b, Health: hangOn(t, hw.SlotB), Clock: clk, TrialTimeout: trialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Start(ctx) }()
	go func() { defer wg.Done(); a.KeepWatchdog(ctx, wd) }()
	defer func() { cancel(); close(b.release); wg.Wait() }()

	// Timers: the sim watchdog's, the keeper's, the trial's verdict.
	if !clk.WaitTimers(3, 10*time.Second) {
		t.Fatalf("%d timers pending, want the watchdog's, the keeper's and the trial's", clk.Pending())
	}
	waitFeed := func(when string) {
		t.Helper()
		select {
		case <-wd.fed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the watchdog was not fed", when)
		}
	}
	waitFeed("at start")
	// Healthy until the deadline: fed every 20 s (a third of the timeout).
	step := 20 * time.Second
	for elapsed := step; elapsed < trialTimeout; elapsed += step {
		if !clk.WaitTimers(3, 10*time.Second) { // the keeper has set its next tick
			t.Fatalf("%v into the trial: %d timers pending, want 3", elapsed-step, clk.Pending())
		}
		clk.Advance(step)
		waitFeed(elapsed.String() + " into the trial")
	}
	fed := wd.count()
	// The deadline passes: the agent tries to reboot (it hangs) and the
	// keeper stops feeding; a minute later the watchdog resets the node.
	for range 4 {
		clk.Advance(step)
		select {
		case err := <-swd.Resets():
			if err != nil {
				t.Fatalf("bootloader after the watchdog reset: %v", err)
			}
			if got := wd.count(); got != fed {
				t.Errorf("fed %d times after the trial was overdue, want 0", got-fed)
			}
			if got, want := leftB(), before-1; got != want {
				t.Errorf("trial attempts left = %d, want %d: the reset must count as a boot", got, want)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("the watchdog did not reset the node after the trial's deadline")
}
