package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"meterupd/agent"
	"meterupd/localapi"
)

// The veto registry (issue 13): local processes register on the local
// API (veto-register, a stream that stays open as long as the process
// wants to be asked) and are asked before every activation (an "ask"
// event on their stream); they answer with veto-answer on another
// connection. The registry is the daemon's: without a daemon nobody is
// registered and nobody is asked. It implements agent.Asker.

// maxVetoProcs bounds the registered processes: a local process that
// registers in a loop cannot make every activation wait on thousands.
const maxVetoProcs = 16

type vetoProc struct {
	name    string
	timeout time.Duration
	ask     chan localapi.Event // ask, prepare, outcome
}

type vetoRegistry struct {
	publish func(localapi.Event)

	mu      sync.Mutex
	procs   map[*vetoProc]struct{}
	next    uint64
	pending map[uint64]chan agent.Answer
}

func newVetoRegistry(publish func(localapi.Event)) *vetoRegistry {
	return &vetoRegistry{publish: publish, procs: map[*vetoProc]struct{}{}, pending: map[uint64]chan agent.Answer{}}
}

// serve runs one veto-register stream until the client leaves.
func (v *vetoRegistry) serve(ctx context.Context, req localapi.Request, emit func(localapi.Event), stop <-chan struct{}) (any, error) {
	p := &vetoProc{name: req.Process, timeout: time.Duration(req.TimeoutMS) * time.Millisecond, ask: make(chan localapi.Event, 4)}
	if p.timeout <= 0 {
		p.timeout = localapi.DefaultVetoWait
	}
	v.mu.Lock()
	if len(v.procs) >= maxVetoProcs {
		v.mu.Unlock()
		return nil, fmt.Errorf("veto-register refused: %d processes are registered already", maxVetoProcs)
	}
	v.procs[p] = struct{}{}
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		delete(v.procs, p)
		v.mu.Unlock()
	}()
	emit(localapi.Event{Kind: "registered", Message: fmt.Sprintf("%s is asked before every activation (answer within %s)", p.name, p.timeout)})
	for {
		select {
		case ev := <-p.ask:
			emit(ev)
		case <-ctx.Done():
			return nil, nil
		case <-stop:
			return nil, localapi.ErrStopping
		}
	}
}

// answer delivers a veto-answer to the question waiting for it.
func (v *vetoRegistry) answer(req localapi.Request) (any, error) {
	v.mu.Lock()
	c, ok := v.pending[req.Question]
	delete(v.pending, req.Question)
	v.mu.Unlock()
	if !ok {
		return nil, &localapi.Error{Code: localapi.CodeRefused, Message: fmt.Sprintf("question %d is not waiting for an answer (answered already, or its time ran out)", req.Question)}
	}
	c <- agent.Answer{Veto: req.Veto, Code: agent.VetoCode(req.Code), Detail: req.Reason, RetryAfter: req.RetryAfterS}
	return localapi.Outcome{Message: "answer recorded"}, nil
}

// Ask asks every registered process and waits for each answer, or its
// timeout (agent.Asker).
func (v *vetoRegistry) Ask(ctx context.Context, q agent.Question) []agent.Answer {
	return v.round(ctx, "ask", fmt.Sprintf("may version %s in slot %s be activated?", q.Version, q.Slot), q)
}

// Prepare tells every registered process that the node switches now and
// waits for each to acknowledge (veto-answer; its content is ignored:
// this is not a question) or its timeout: the metrology process closes
// and flushes its interval (agent.Notifier).
func (v *vetoRegistry) Prepare(ctx context.Context, q agent.Question) {
	v.round(ctx, "prepare", fmt.Sprintf("switching to version %s in slot %s now: close and flush, then acknowledge", q.Version, q.Slot), q)
}

// Tell tells every registered process the outcome of the switch (no
// answer expected; agent.Notifier).
func (v *vetoRegistry) Tell(_ context.Context, q agent.Question, outcome string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := range v.procs {
		select {
		case p.ask <- localapi.Event{Kind: "outcome", Question: &localapi.VetoQuestion{Question: q}, Message: outcome}:
		default:
		}
	}
	v.publish(localapi.Event{Kind: "outcome", Message: outcome})
}

// round sends one event of kind to every registered process and waits
// for each answer or its timeout.
func (v *vetoRegistry) round(ctx context.Context, kind, msg string, q agent.Question) []agent.Answer {
	type asked struct {
		p  *vetoProc
		id uint64
		c  chan agent.Answer
	}
	var all []asked
	v.mu.Lock()
	for p := range v.procs {
		v.next++
		a := asked{p: p, id: v.next, c: make(chan agent.Answer, 1)}
		v.pending[a.id] = a.c
		all = append(all, a)
	}
	v.mu.Unlock()
	now := time.Now()
	for _, a := range all {
		vq := localapi.VetoQuestion{ID: a.id, Question: q, Deadline: now.Add(a.p.timeout)}
		select {
		case a.p.ask <- localapi.Event{Kind: kind, Question: &vq, Message: msg}:
		default: // the process does not take its events: it will time out
		}
		v.publish(localapi.Event{Kind: "veto-" + kind, Message: fmt.Sprintf("%s (question %d): %s", a.p.name, a.id, msg)})
	}
	out := make([]agent.Answer, len(all))
	for i, a := range all {
		t := time.NewTimer(time.Until(now.Add(a.p.timeout)))
		select {
		case ans := <-a.c:
			out[i] = ans
		case <-t.C:
			out[i] = agent.Answer{NoAnswer: true}
		case <-ctx.Done():
			out[i] = agent.Answer{NoAnswer: true}
		}
		t.Stop()
		out[i].Process = a.p.name
		v.mu.Lock()
		delete(v.pending, a.id)
		v.mu.Unlock()
		if kind == "ask" {
			v.publish(localapi.Event{Kind: "veto-answered", Message: out[i].String()})
		}
	}
	return out
}
