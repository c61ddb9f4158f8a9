package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"strconv"
	"sync"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/clock"
	"meterupd/localapi"
)

// ErrRunning: a daemon already runs on this node.
var ErrRunning = errors.New("node: a meterupd daemon already runs on this node")

// maxReboots is the loop guard of the sim board: a node that reboots this
// often in a row without ever coming to rest is looping.
const maxReboots = 16

// Daemon owns the node: one goroutine (the one that calls Run) opens the
// board, starts the agent and executes every command, in order.
type Daemon struct {
	cfg Config
	// Ready is called once the agent has started and the socket listens
	// (the service manager's readiness), with the node's status; may be
	// nil. It runs on the owner's goroutine: it must not send commands.
	Ready func(agent.Status)
	// Alive is called by the owner whenever it makes progress: between
	// commands and at every journal commit (the service watchdog). May be
	// nil.
	Alive func()
	// AliveEvery is how often the owner shows a sign of life (Alive)
	// while it waits for commands; 0: only between commands.
	AliveEvery time.Duration
	// Rebooted is told when the sim board rebooted (a sentence); may be
	// nil.
	Rebooted func(msg string)

	jobs chan *job

	mu     sync.Mutex // guards the fields below
	status *agent.Status
	seq    uint64
	subs   map[chan localapi.Event]struct{}
	stop   chan struct{} // closed when Run returns

	cur *Node // the owner's: only its goroutine touches it

	vetoes *vetoRegistry // issue 13: the processes asked before activations
}

type job struct {
	req  localapi.Request
	done chan jobResult // buffered: the owner never waits for a client
}

type jobResult struct {
	res any
	err error
}

// NewDaemon returns a daemon for the node cfg describes.
func NewDaemon(cfg Config) *Daemon {
	d := &Daemon{cfg: cfg, jobs: make(chan *job), subs: map[chan localapi.Event]struct{}{}, stop: make(chan struct{})}
	d.vetoes = newVetoRegistry(d.publishNote)
	d.cfg.vetoes = d.vetoes
	return d
}

// Run takes the node's lock, listens on the socket, starts the agent and
// serves commands until ctx ends. A stop is not an error: Run returns nil
// once the step in progress is checkpointed (an install resumes at the
// next Run). An Embedded daemon has neither socket nor lock.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.stop)
	if err := d.cfg.Resolve(); err != nil {
		return err
	}
	if err := d.cfg.checkState(); err != nil {
		return err
	}
	log := d.cfg.Logger
	if d.cfg.Embedded {
		// The host program owns the state directory and is the only
		// client: no socket to listen on, no lock to take.
		return d.finish(ctx, d.own(ctx))
	}
	sock := d.cfg.SocketPath()
	if c, err := localapi.Dial(ctx, sock, "meterupd run"); err == nil {
		c.Close()
		return fmt.Errorf("%w (it answers on %s); stop it first", ErrRunning, sock)
	}
	unlock, err := lockFile(d.cfg.LockPath())
	if err != nil {
		return err
	}
	defer unlock()
	gid := -1
	if g := d.cfg.SocketGroup; g != "" {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return fmt.Errorf("socket group: %w", err)
		}
		if gid, err = strconv.Atoi(grp.Gid); err != nil {
			return fmt.Errorf("socket group %s: gid %q", g, grp.Gid)
		}
	}
	ln, err := localapi.Listen(sock, gid, true)
	if err != nil {
		return err
	}
	srv := &localapi.Server{Handler: d, Agent: Version().Version, Logger: log}
	sctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(sctx, ln); err != nil {
			log.Error("local API stopped", slog.Any("err", err))
		}
	}()
	// Clients are served until the owner has finished: a client waiting
	// for an answer gets it (or "stopping") before the socket goes.
	defer func() {
		cancel()
		wg.Wait()
	}()
	return d.finish(ctx, d.own(ctx))
}

// finish turns the owner's end into Run's result: a stop is not an error.
func (d *Daemon) finish(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) || ctx.Err() != nil && err == nil {
		d.cfg.Logger.Info("stopped")
		return nil
	}
	return err
}

// own is the owner goroutine's loop.
func (d *Daemon) own(ctx context.Context) error {
	log := d.cfg.Logger
	ready := false
	for reboots := 0; ; {
		n, err := openLocked(d.cfg, d.onCommit)
		if err != nil {
			return err
		}
		d.cur = n
		n.onEvent = d.publish // issue 12: console logins and lockouts
		for _, p := range n.settings.Problems {
			log.Warn("node configuration damaged; signed installs refused", slog.String("problem", p))
		}
		d.snapshot(ctx, "")
		err = n.Start(ctx)
		if errors.Is(err, hw.ErrRebooted) {
			d.rebooted(ctx, n)
			n.Close()
			if reboots++; reboots > maxReboots {
				return fmt.Errorf("node: the node rebooted %d times in a row without coming to rest", reboots)
			}
			continue
		}
		if err != nil {
			n.Close()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n.RefreshRadio(ctx)
		d.snapshot(ctx, "started")
		log.Info("agent at rest", slog.String("slot", string(n.Booted())))
		if !ready {
			ready = true
			if d.Ready != nil {
				var st agent.Status
				d.mu.Lock()
				if d.status != nil {
					st = *d.status
				}
				d.mu.Unlock()
				d.Ready(st)
			}
		}
		rebooted, err := d.serve(ctx, n)
		if rebooted {
			d.rebooted(ctx, n)
		}
		n.Close()
		if err != nil || !rebooted {
			return err
		}
		reboots = 1
	}
}

// serve executes queued commands until ctx ends or one ends in a reboot.
func (d *Daemon) serve(ctx context.Context, n *Node) (rebooted bool, err error) {
	var tick <-chan time.Time
	if d.AliveEvery > 0 {
		t := time.NewTicker(d.AliveEvery)
		defer t.Stop()
		tick = t.C
	}
	// A scheduled activation (issue 13) starts the agent again at its
	// time; the agent decides (the clock may not be valid).
	var due clock.Timer
	arm := func() {
		if due != nil {
			due.Stop()
			due = nil
		}
		if dl, ok := n.nextActivation(); ok {
			due = d.cfg.Clock.NewTimer(dl)
		}
	}
	arm()
	defer func() {
		if due != nil {
			due.Stop()
		}
	}()
	for {
		if d.Alive != nil {
			d.Alive()
		}
		var dueC <-chan time.Time
		if due != nil {
			dueC = due.C()
		}
		select {
		case <-tick:
		case <-dueC:
			due = nil
			if err := n.Start(ctx); errors.Is(err, hw.ErrRebooted) {
				return true, nil
			} else if err != nil && ctx.Err() == nil {
				d.cfg.Logger.Error("scheduled activation", slog.Any("err", err))
			}
			d.snapshot(ctx, "")
			arm()
		case <-ctx.Done():
			return false, nil
		case j := <-d.jobs:
			res, err := n.Handle(ctx, j.req, nil)
			if err != nil && ctx.Err() != nil {
				err = fmt.Errorf("%w; what it was doing resumes when it starts again", localapi.ErrStopping)
			}
			j.done <- jobResult{res, err}
			if o, ok := res.(localapi.Outcome); ok && o.Rebooted {
				return true, nil
			}
			if err == nil {
				d.snapshot(ctx, "")
			}
			arm()
			if ctx.Err() != nil {
				return false, nil
			}
		}
	}
}

func (d *Daemon) rebooted(ctx context.Context, n *Node) {
	msg := fmt.Sprintf("node rebooted: the bootloader started slot %s", n.Booted())
	d.cfg.Logger.Info("node rebooted", slog.String("slot", string(n.Booted())))
	d.mu.Lock()
	st := d.status
	d.mu.Unlock()
	if d.Rebooted != nil {
		d.Rebooted(msg)
	}
	ev := localapi.Event{Kind: "reboot", Message: msg}
	if st != nil {
		ev.Status = *st
	}
	d.publish(ev)
}

// onCommit runs on the owner's goroutine after every journal commit.
func (d *Daemon) onCommit(*agent.Record) {
	if d.Alive != nil {
		d.Alive()
	}
	d.snapshot(context.Background(), "state")
}

// snapshot keeps the node's status for status queries and, with a kind,
// publishes it as an event.
func (d *Daemon) snapshot(ctx context.Context, kind string) {
	if d.cur == nil || d.cur.agent == nil {
		return
	}
	st, err := d.cur.Status(ctx)
	if err != nil {
		d.cfg.Logger.Warn("status unavailable", slog.Any("err", err))
		return
	}
	d.mu.Lock()
	d.status = &st
	d.mu.Unlock()
	if kind != "" {
		d.publish(localapi.Event{Kind: kind, Status: st})
	}
}

// publish sends ev to every subscriber that has room; a slow one misses
// it (and sees the gap in Seq).
func (d *Daemon) publish(ev localapi.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	ev.Seq = d.seq
	for c := range d.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

// publishNote publishes an event that is not a state change (the veto
// registry's) with the node's last status.
func (d *Daemon) publishNote(ev localapi.Event) {
	d.mu.Lock()
	if d.status != nil {
		ev.Status = *d.status
	}
	d.mu.Unlock()
	d.publish(ev)
}

func (d *Daemon) subscribe() (chan localapi.Event, func()) {
	c := make(chan localapi.Event, 64)
	d.mu.Lock()
	d.subs[c] = struct{}{}
	d.mu.Unlock()
	return c, func() {
		d.mu.Lock()
		delete(d.subs, c)
		d.mu.Unlock()
	}
}

func loginDelay(ctx context.Context) {
	t := time.NewTimer(LoginDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Handle serves one client request (localapi.Handler). Status and version
// answer at once from the last committed record; events stream until the
// client leaves; every other command is queued to the owner and runs to
// its end even if the client leaves.
func (d *Daemon) Handle(ctx context.Context, req localapi.Request, emit func(localapi.Event)) (any, error) {
	switch req.Cmd {
	case "status":
		d.mu.Lock()
		st := d.status
		d.mu.Unlock()
		if st == nil {
			break // not opened yet: ask the owner
		}
		return *st, nil
	case "version":
		v := Version()
		v.Board = d.cfg.Board
		return v, nil
	// Issue 13: not queued to the owner (it waits for these answers).
	case "veto-register":
		return d.vetoes.serve(ctx, req, emit, d.stop)
	case "veto-answer":
		return d.vetoes.answer(req)
	case "events":
		c, unsub := d.subscribe()
		defer unsub()
		d.mu.Lock()
		st := d.status
		d.mu.Unlock()
		if st != nil {
			emit(localapi.Event{Kind: "status", Status: *st})
		}
		for {
			select {
			case ev := <-c:
				emit(ev)
			case <-ctx.Done():
				return nil, nil
			case <-d.stop:
				return nil, localapi.ErrStopping
			}
		}
	}
	var evs chan localapi.Event
	if emit != nil && req.Cmd != "journal" {
		c, unsub := d.subscribe()
		defer unsub()
		evs = c
	}
	j := &job{req: req, done: make(chan jobResult, 1)}
	select {
	case d.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.stop:
		return nil, localapi.ErrStopping
	}
	for {
		select {
		case ev := <-evs:
			emit(ev)
		case r := <-j.done:
			if req.Cmd == "login" && r.err != nil {
				loginDelay(ctx) // issue 12: a delay per failed attempt
			}
			for {
				select {
				case ev := <-evs:
					emit(ev)
				default:
					return r.res, r.err
				}
			}
		}
	}
}
