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
// It acknowledges "prepare" (the safe state before the switch). It returns
// once registered; the function returned gives the number of questions
// seen and the kinds of the events received ("ask", "prepare", "outcome:
// MESSAGE").
func vetoProcess(t *testing.T, dir, name string, timeout time.Duration, answers []*localapi.Request) func() (int, []string) {
	t.Helper()
	sock := filepath.Join(dir, "meterupd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := localapi.Dial(ctx, sock, name)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := 0
	var kinds []string
	registered := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.Call(ctx, localapi.Request{Cmd: "veto-register", Process: name, TimeoutMS: timeout.Milliseconds()}, func(ev localapi.Event) {
			mu.Lock()
			k := ev.Kind
			if k == "outcome" {
				k += ": " + ev.Message
			}
			kinds = append(kinds, k)
			mu.Unlock()
			var a *localapi.Request
			switch ev.Kind {
			case "registered":
				close(registered)
				return
			case "prepare":
				a = &localapi.Request{}
			case "ask":
				mu.Lock()
				a = answers[min(asked, len(answers)-1)]
				asked++
				mu.Unlock()
			}
			if a != nil && ev.Question != nil {
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
	return func() (int, []string) {
		mu.Lock()
		defer mu.Unlock()
		return asked, append([]string(nil), kinds...)
	}
}

// TestVetoThroughTheDaemon: a registered process vetoes (billing close,
// retry after 2 s): the activation is deferred and reported; the daemon
// asks again at the retry time, the process says ok; it is told just
// before the switch (and acknowledges), the set is committed, and it is
// told the outcome.
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
	deadline := time.Now().Add(5 * time.Second)
	n, kinds := asked()
	for len(kinds) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n, kinds = asked()
	}
	if st.Running.Slot != "B" || n != 2 {
		t.Fatalf("after the retry: running %s, asked %d times; want B, 2", st.Running.Slot, n)
	}
	want := []string{"registered", "ask", "ask", "prepare", "outcome: committed"}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		t.Errorf("the process received %q, want %q", kinds, want)
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
	if n, _ := asked(); st.Running.Slot != "B" || n != 1 || st.Last == nil || !st.Last.Forced {
		t.Fatalf("forced: running %s, asked %d times; want B, asked once, recorded as forced (%+v)", st.Running.Slot, n, st.Last)
	}
}
