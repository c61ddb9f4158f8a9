package node

import (
	"context"
	"fmt"
	"time"

	"meterupd/agent"
	"meterupd/localapi"
)

// Vetoer is a local process's side of the veto protocol (issue 13): it
// registers on the daemon's socket, answers every question with Decide,
// acknowledges the safe-state notice (closing and flushing its interval
// first, Flush), and reports what it hears. The sim's metrology process
// (`meterupd sim metrology`) is one.
type Vetoer struct {
	Socket  string
	Process string
	Timeout time.Duration
	// Decide answers question n (from 1): ok (zero Request) or a veto.
	Decide func(n int, q agent.Question) localapi.Request
	// Flush closes and flushes the current interval (may be nil).
	Flush func() error
	// Say reports what happens, one sentence at a time (may be nil).
	Say func(string)
}

// Run registers and answers until ctx ends or the daemon goes away.
func (v *Vetoer) Run(ctx context.Context) error {
	say := v.Say
	if say == nil {
		say = func(string) {}
	}
	cl, err := localapi.Dial(ctx, v.Socket, v.Process)
	if err != nil {
		return err
	}
	defer cl.Close()
	asked := 0
	answer := func(id uint64, req localapi.Request) {
		req.Cmd, req.Question = "veto-answer", id
		c, err := localapi.Dial(ctx, v.Socket, v.Process)
		if err != nil {
			say("cannot answer: " + err.Error())
			return
		}
		defer c.Close()
		if err := c.Call(ctx, req, nil, nil); err != nil {
			say("answer refused: " + err.Error())
		}
	}
	err = cl.Call(ctx, localapi.Request{Cmd: "veto-register", Process: v.Process, TimeoutMS: v.Timeout.Milliseconds()}, func(ev localapi.Event) {
		switch ev.Kind {
		case "registered":
			say(ev.Message)
		case "ask":
			if ev.Question == nil {
				return
			}
			asked++
			req := v.Decide(asked, ev.Question.Question)
			if req.Veto {
				say(fmt.Sprintf("asked whether %s may be activated: veto, %s (%s), ask again in %ds", ev.Question.Question.Version, req.Code, req.Reason, req.RetryAfterS))
			} else {
				say(fmt.Sprintf("asked whether %s may be activated: ok", ev.Question.Question.Version))
			}
			answer(ev.Question.ID, req)
		case "prepare":
			if ev.Question == nil {
				return
			}
			msg := "switching now: nothing to flush"
			if v.Flush != nil {
				if err := v.Flush(); err != nil {
					msg = "switching now: flush failed: " + err.Error()
				} else {
					msg = "switching now: current interval closed and flushed"
				}
			}
			say(msg)
			answer(ev.Question.ID, localapi.Request{})
		case "outcome":
			say("outcome of the switch: " + ev.Message)
		}
	}, nil)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
