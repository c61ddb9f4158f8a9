package mqttlink

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/internal/brokertest"
	"meterupd/localapi"
)

// fakeNode is a node API that emits one console event and records what
// the link asks of it.
type fakeNode struct {
	mu      sync.Mutex
	revoked []string
}

func (f *fakeNode) Handle(ctx context.Context, req localapi.Request, emit func(localapi.Event)) (any, error) {
	switch req.Cmd {
	case "link-facts":
		if req.Link != nil {
			return *req.Link, nil
		}
		return agent.LinkFacts{}, nil
	case "events":
		emit(localapi.Event{Kind: "status", Status: agent.Status{State: agent.StateIdle}})
		time.Sleep(300 * time.Millisecond) // connected by then
		emit(localapi.Event{Kind: "console", Message: "console lockout for 15m0s after 5 failed logins"})
		<-ctx.Done()
		return nil, nil
	case "revoke":
		f.mu.Lock()
		f.revoked = req.Revoked
		f.mu.Unlock()
		return nil, nil
	}
	return agent.Status{State: agent.StateIdle}, nil
}

// TestRealMosquittoConsoleEventsAndRevocations: a lockout at the console
// reaches the head-end on state/<id>/event, and the head-end's retained
// revocation list reaches the node.
func TestRealMosquittoConsoleEventsAndRevocations(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/N8/event")
	b.Pub("state/N8/revoked", []byte(`{"revoked": ["aabb"]}`), true)
	f := &fakeNode{}
	l, err := New(Config{Broker: b.URL, ID: "N8", Node: f, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		rev := f.revoked
		f.mu.Unlock()
		lines := sub.Lines()
		if len(lines) > 0 && len(rev) == 1 {
			var ev NodeEvent
			if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev.Kind != "console" || !strings.Contains(ev.Message, "lockout") {
				t.Fatalf("event %q: %+v, %v", lines[0], ev, err)
			}
			if rev[0] != "aabb" {
				t.Fatalf("revoked %q", rev)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Fatalf("events %q, revoked %q", sub.Lines(), f.revoked)
}
