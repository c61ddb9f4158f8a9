package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/localapi"
)

// vetoProcess registers as a local process on the daemon's socket and
// answers each question with the next of answers (nil: never answers).
// It returns once registered, and the number of questions seen.
func vetoProcess(t *testing.T, dir, name string, timeout time.Duration, answers []*localapi.Request) func() int {
	t.Helper()
	sock := filepath.Join(dir, "meterupd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := localapi.Dial(ctx, sock, name)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := 0
	registered := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.Call(ctx, localapi.Request{Cmd: "veto-register", Process: name, TimeoutMS: timeout.Milliseconds()}, func(ev localapi.Event) {
			switch ev.Kind {
			case "registered":
				close(registered)
			case "ask":
				mu.Lock()
				a := answers[min(asked, len(answers)-1)]
				asked++
				mu.Unlock()
				if a == nil {
					return
				}
				ans := *a
				ans.Cmd, ans.Question = "veto-answer", ev.Question.ID
				c, err := localapi.Dial(ctx, sock, name)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				if err := c.Call(ctx, ans, nil, nil); err != nil {
					t.Errorf("veto-answer: %v", err)
				}
			}
		}, nil)
	}()
	t.Cleanup(func() { cancel(); cl.Close(); <-done })
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatal("veto-register: not registered within 10 s")
	}
	return func() int { mu.Lock(); defer mu.Unlock(); return asked }
}

// TestVetoThroughTheDaemon: a registered process vetoes (billing close,
// retry after 2 s): the activation is deferred and reported; the daemon
// asks again at the retry time, the process says ok, the set is committed.
func TestVetoThroughTheDaemon(t *testing.T) {
	dir := newNode(t)
	daemon(t, dir)
	img, sha := writeImage(t, "2.0.0", 200000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--no-activate")
	asked := vetoProcess(t, dir, "metrology", 2*time.Second, []*localapi.Request{
		{Veto: true, Code: string(agent.VetoBillingClose), RetryAfterS: 2, Reason: "closing November"},
		{},
	})
	out := mustMU(t, dir, "activate")
	if !strings.Contains(out, "activation deferred until") || !strings.Contains(out, "metrology vetoed: billing-close (closing November)") {
		t.Errorf("activate under a veto:\n%s", out)
	}
	st := status(t, dir)
	if st.State != agent.StateDeferred || st.Running.Slot != "A" || st.Update.RetryAt == nil {
		t.Fatalf("status after the veto: %+v", st)
	}
	st = waitState(t, dir, agent.StateCommitted)
	if st.Running.Slot != "B" || asked() != 2 {
		t.Fatalf("after the retry: running %s, asked %d times; want B, 2", st.Running.Slot, asked())
	}
}

// TestVetoProcessThatNeverAnswers: no answer within the timeout counts as
// a veto (no-answer); activate --force then activates without asking.
func TestVetoProcessThatNeverAnswers(t *testing.T) {
	dir := newNode(t)
	daemon(t, dir)
	img, sha := writeImage(t, "2.0.0", 200000)
	mustMU(t, dir, "install", img, "--sha256", sha, "--version", "2.0.0", "--no-activate")
	asked := vetoProcess(t, dir, "billing", 300*time.Millisecond, []*localapi.Request{nil})
	out := mustMU(t, dir, "activate")
	if !strings.Contains(out, "billing did not answer in time (counts as a veto)") {
		t.Errorf("activate with a silent process:\n%s", out)
	}
	if st := status(t, dir); st.State != agent.StateDeferred || len(st.Update.Answers) != 1 || st.Update.Answers[0].Code != agent.VetoNoAnswer {
		t.Fatalf("status: %+v", st.Update)
	}
	mustMU(t, dir, "activate", "--force")
	st := waitState(t, dir, agent.StateCommitted)
	if st.Running.Slot != "B" || asked() != 1 || st.Last == nil || !st.Last.Forced {
		t.Fatalf("forced: running %s, asked %d times; want B, asked once, recorded as forced (%+v)", st.Running.Slot, asked(), st.Last)
	}
}
