package agent_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
)

// asker is a behavioural fake of the node's registry: it answers with the
// next scripted round (the last one repeats) and counts the questions.
type asker struct {
	mu     sync.Mutex
	rounds [][]agent.Answer
	asked  int
}

func (f *asker) Ask(_ context.Context, q agent.Question) []agent.Answer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	r := f.rounds[min(f.asked-1, len(f.rounds)-1)]
	return append([]agent.Answer(nil), r...)
}

var (
	okAns   = agent.Answer{Process: "metrology"}
	billing = agent.Answer{Process: "metrology", Veto: true, Code: agent.VetoBillingClose, Detail: "closing 2026-11", RetryAfter: 600}
)

// vetoNode installs 2.0.0 without activating it; start runs one agent
// start with the asker (and an activate command when asked).
func vetoNode(t *testing.T, maxDefer time.Duration) *schedNode {
	n := newSchedNode(t)
	err := n.boot(nil, func(a *agent.Agent, _ *sim.Board) error {
		return a.Install(context.Background(), agent.InstallRequest{MaxDefer: maxDefer, Item: agent.InstallItem{
			Kind: agent.FullImage, Version: "2.0.0", SHA256: n.sha, Payloads: []string{filepath.Join(n.dir, "new.img")}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// withAsker is one start of the node whose agent asks f; do runs on it.
func (n *schedNode) withAsker(f agent.Asker, do func(a *agent.Agent) error) (agent.Status, []audit.Event, error) {
	n.t.Helper()
	b, err := sim.Open(n.dir)
	if err != nil {
		n.t.Fatal(err)
	}
	defer b.Close()
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(n.dir, "store"), Clock: n.clk, NotBefore: built, Vetoes: f})
	if err != nil {
		n.t.Fatal(err)
	}
	err = do(a)
	st, _ := a.Status(context.Background())
	return st, a.OpEvents(), err
}

func activate(a *agent.Agent) error { return a.Activate(context.Background()) }
func start(a *agent.Agent) error    { return a.Start(context.Background()) }

// A billing-close veto defers the activation: status deferred with the
// reason, the question and the answer in the operational ring; at the
// retry time the process is asked again and, ok now, the set activates.
func TestVetoDefersAndIsReported(t *testing.T) {
	n := vetoNode(t, 0)
	f := &asker{rounds: [][]agent.Answer{{billing}, {okAns}}}
	st, ops, err := n.withAsker(f, activate)
	if err != nil {
		t.Fatalf("activate under a veto: %v, want a deferral", err)
	}
	if st.State != agent.StateDeferred || !strings.Contains(st.Reason, "billing-close") || !strings.Contains(st.Reason, "closing 2026-11") {
		t.Fatalf("status: state %q reason %q, want deferred by billing-close", st.State, st.Reason)
	}
	if want := n.clk.Now().Add(10 * time.Minute).Truncate(time.Second); st.Update.RetryAt == nil || !st.Update.RetryAt.Equal(want) {
		t.Errorf("retry at %v, want %v", st.Update.RetryAt, want)
	}
	var kinds []string
	for _, e := range ops {
		kinds = append(kinds, string(e.Kind)+": "+e.Detail)
	}
	if len(ops) != 2 || ops[0].Kind != audit.OpVetoAsked || ops[1].Kind != audit.OpVetoAnswered || !strings.Contains(ops[1].Detail, "billing-close") {
		t.Errorf("operational ring: %q", kinds)
	}
	// Before the retry time nobody is asked and nothing happens.
	n.clk.Advance(5 * time.Minute)
	if st, _, err := n.withAsker(f, start); err != nil || st.State != agent.StateDeferred || f.asked != 1 {
		t.Fatalf("start before the retry time: %v, state %q, asked %d times", err, st.State, f.asked)
	}
	n.clk.Advance(5 * time.Minute)
	_, _, err = n.withAsker(f, start)
	if !errors.Is(err, hw.ErrRebooted) || f.asked != 2 {
		t.Fatalf("start at the retry time: %v (asked %d times), want the activation", err, f.asked)
	}
}

// A process that vetoes for ever: max-defer bounds it and the activation
// is recorded as expired; force activates without asking.
func TestMaxDeferThenForce(t *testing.T) {
	n := vetoNode(t, time.Hour)
	long := billing
	long.RetryAfter = 40 * 60
	f := &asker{rounds: [][]agent.Answer{{okAns, long}}}
	if st, _, err := n.withAsker(f, activate); err != nil || st.State != agent.StateDeferred {
		t.Fatalf("first veto: %v, %q", err, st.State)
	}
	n.clk.Advance(40 * time.Minute)
	st, _, err := n.withAsker(f, start)
	if err != nil || st.State != agent.StateDeferred {
		t.Fatalf("second veto: %v, %q", err, st.State)
	}
	// The retry is capped at the end of the deferral (60 min, not 80).
	if want := n.clk.Now().Add(20 * time.Minute).Truncate(time.Second); !st.Update.RetryAt.Equal(want) {
		t.Errorf("retry at %v, want the end of max-defer %v", st.Update.RetryAt, want)
	}
	n.clk.Advance(20 * time.Minute)
	var rec *agent.Record
	_, _, err = n.withAsker(f, func(a *agent.Agent) error {
		err := a.Start(context.Background())
		rec = a.Record()
		return err
	})
	if !errors.Is(err, hw.ErrRebooted) || f.asked != 3 || rec.Update == nil || !rec.Update.Expired || rec.Update.Phase != agent.Activating {
		t.Fatalf("max-defer reached: %v (asked %d), update %+v; want activating, deferral expired", err, f.asked, rec.Update)
	}

	// Force: nobody is asked, the activation is recorded as forced.
	m := vetoNode(t, time.Hour)
	g := &asker{rounds: [][]agent.Answer{{long}}}
	if _, _, err := m.withAsker(g, activate); err != nil {
		t.Fatal(err)
	}
	_, _, err = m.withAsker(g, func(a *agent.Agent) error {
		err := a.Force(context.Background())
		rec = a.Record()
		return err
	})
	if !errors.Is(err, hw.ErrRebooted) || g.asked != 1 || !rec.Update.Force {
		t.Fatalf("force: %v (asked %d), update %+v; want activating, forced, not asked again", err, g.asked, rec.Update)
	}
}

// A process that does not answer counts as a veto (no-answer), with the
// default retry.
func TestVetoNoAnswer(t *testing.T) {
	n := vetoNode(t, 0)
	f := &asker{rounds: [][]agent.Answer{{okAns, {Process: "billing", NoAnswer: true}}}}
	st, ops, err := n.withAsker(f, activate)
	if err != nil || st.State != agent.StateDeferred || !strings.Contains(st.Reason, "billing did not answer") {
		t.Fatalf("no answer: %v, state %q, reason %q; want deferred", err, st.State, st.Reason)
	}
	if want := n.clk.Now().Add(agent.DefaultVetoRetry).Truncate(time.Second); !st.Update.RetryAt.Equal(want) {
		t.Errorf("retry at %v, want %v", st.Update.RetryAt, want)
	}
	if len(st.Update.Answers) != 2 || st.Update.Answers[1].Code != agent.VetoNoAnswer {
		t.Errorf("answers reported: %+v", st.Update.Answers)
	}
	if len(ops) != 3 {
		t.Errorf("operational ring holds %d events, want asked + 2 answers", len(ops))
	}
}
