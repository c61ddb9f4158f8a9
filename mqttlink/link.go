package mqttlink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"meterupd/agent"
	"meterupd/clock"
	"meterupd/internal/mqttc"
	"meterupd/localapi"
	"meterupd/shadow"
)

// Config configures the link. Broker and ID are required.
type Config struct {
	// Broker is tcp://HOST:PORT, or ssl://HOST:PORT (TLS; a meter uses a
	// client certificate).
	Broker string
	// ID is the node's id in the topics (state/<id>/…).
	ID string
	// CA, Cert and Key are PEM files for ssl:// (CA: the broker's
	// issuer; Cert and Key: the node's client certificate).
	CA, Cert, Key string
	// Username and Password, when the broker asks for them.
	Username, Password string
	// StoreDir is the package store: fetches live in StoreDir/dl/<job>.
	StoreDir string
	// MaxPackage bounds a package the node accepts to fetch (the store's
	// room). Default 64 MiB.
	MaxPackage int64
	// Node is the node's command API (the daemon): the link is a client
	// of it and knows nothing of flash.
	Node localapi.Handler
	// Agent is this meterupd's version, for the link's online message.
	Agent  string
	Clock  clock.Clock
	Logger *slog.Logger
	// KeepAlive is the MQTT keep-alive (default 60 s; a radio link's NAT
	// forgets idle flows after a few minutes).
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the wait between connection
	// attempts and between fetch retries (default 2 s and 10 min). Each
	// wait is jittered by ×0.5–1.5, so a fleet does not reconnect in
	// lockstep after a broker restart.
	BackoffMin, BackoffMax time.Duration
	// ProgressEvery is the least time between two progress-only reports
	// (default 30 s: airtime is scarce). State changes go out at once.
	ProgressEvery time.Duration
	// StreamBlock and StreamQuiet tune the in-band block stream.
	StreamBlock int
	StreamQuiet time.Duration
	// Jitter returns a number in [0, 1) (tests make it fixed).
	Jitter func() float64
	// OnPackageBytes, if set, is told every count of package bytes that
	// arrived (benchmarks count delivery with it).
	OnPackageBytes func(n int)
}

func (c *Config) defaults() error {
	if c.Broker == "" || c.ID == "" || c.Node == nil {
		return errors.New("mqttlink: a broker, a node id and the node's API are required")
	}
	if len(c.ID) > shadow.MaxJobLen || !validID(c.ID) {
		return fmt.Errorf("mqttlink: node id %q: 1 to %d characters of [A-Za-z0-9._-]", c.ID, shadow.MaxJobLen)
	}
	if c.MaxPackage <= 0 {
		c.MaxPackage = 64 << 20
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 2 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 10 * time.Minute
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 30 * time.Second
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	return nil
}

func validID(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return s != ""
}

// Topics of one node (docs/mqtt.md).
type Topics struct{ Delta, Update, Accepted, Request, StreamGet, StreamData, Link, Revoked, Event string }

// TopicsOf returns the topics of node id.
func TopicsOf(id string) Topics {
	p := "state/" + id + "/"
	return Topics{Delta: p + "update/delta", Update: p + "update", Accepted: p + "update/accepted",
		Request: p + "request", StreamGet: p + "stream/get", StreamData: p + "stream/data", Link: p + "link", Revoked: p + "revoked", Event: p + "event"}
}

// Report is the document the node publishes on state/<id>/update.
type Report struct {
	Seq      uint64       `json:"seq"`
	Reported agent.Status `json:"reported"`
}

// Accepted is the replica's acknowledgement on state/<id>/update/accepted.
type Accepted struct {
	Seq uint64 `json:"seq"`
}

// LinkState is the retained document on state/<id>/link: online when the
// node connects, offline as its last will.
type LinkState struct {
	Online bool   `json:"online"`
	Agent  string `json:"agent,omitempty"`
}

// maxPassed bounds the states kept for reporting while the link is down:
// after a reconnect the full report says where the node is now.
const maxPassed = 32

// seqBlock is how many report numbers one journal commit reserves.
const seqBlock = 1000

// Link is the node's MQTT link to the head-end.
type Link struct {
	cfg    Config
	topics Topics
	log    *slog.Logger
	stream *StreamRemote

	reportMu  sync.Mutex // serialises report
	mu        sync.Mutex
	client    *mqttc.Client
	facts     agent.LinkFacts // as persisted
	seq       uint64          // the next report number
	status    *agent.Status   // the node's, last seen
	over      *override       // the link's view of the job, over the node's
	lastState string          // state of the last report sent
	lastJob   string
	lastSent  time.Time
	finalSeq  uint64 // the last final report, until the replica accepts it
	accepted  uint64
	job       *running       // the job being worked on
	passed    []agent.Status // states the node went through, not yet reported
	desired   chan []byte
	revoked   chan []byte // the head-end's revocation list of technician tokens
	events    chan []byte // node events for state/<id>/event
	wake      chan struct{}
}

// override is what the link reports while the node knows nothing of the
// job yet (downloading), or when the link refused it before the node saw it.
type override struct {
	job      string
	state    string
	progress *agent.Progress
	result   int
	reason   string
}

// running is a job in progress on the link's side.
type running struct {
	job    string
	doc    shadow.Delta
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and returns a link; Run runs it.
func New(cfg Config) (*Link, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, topics: TopicsOf(cfg.ID), log: cfg.Logger.With(slog.String("link", cfg.ID)),
		desired: make(chan []byte, 1), wake: make(chan struct{}, 1), revoked: make(chan []byte, 1), events: make(chan []byte, 16)}
	l.stream = &StreamRemote{BlockSize: cfg.StreamBlock, Quiet: cfg.StreamQuiet, Publish: l.publishStreamGet}
	return l, nil
}

// Run connects, reconnects and serves the link until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	if err := l.loadFacts(ctx); err != nil {
		return err
	}
	l.cleanStale()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); l.followNode(ctx) }()
	go func() { defer wg.Done(); l.work(ctx) }()
	err := l.connectLoop(ctx)
	cancel()
	l.stopJob()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// loadFacts reads the persisted facts and reserves a range of report
// numbers: one journal commit per seqBlock reports, and never a number
// used twice, across restarts.
func (l *Link) loadFacts(ctx context.Context) error {
	v, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "link-facts"}, nil)
	if err != nil {
		return fmt.Errorf("mqttlink: the node's link facts: %w", err)
	}
	f, err := asFacts(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.facts = f
	l.seq = max(f.Seq, 1)
	l.mu.Unlock()
	return l.reserve(ctx)
}

func asFacts(v any) (agent.LinkFacts, error) {
	switch f := v.(type) {
	case agent.LinkFacts:
		return f, nil
	case *agent.LinkFacts:
		return *f, nil
	}
	var f agent.LinkFacts
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	return f, err
}

// reserve persists the end of the next range of report numbers.
func (l *Link) reserve(ctx context.Context) error {
	l.mu.Lock()
	f := l.facts
	f.Seq = l.seq + seqBlock
	l.mu.Unlock()
	return l.persist(ctx, f)
}

func (l *Link) persist(ctx context.Context, f agent.LinkFacts) error {
	if _, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "link-facts", Link: &f}, nil); err != nil {
		return fmt.Errorf("mqttlink: persist the link's facts: %w", err)
	}
	l.mu.Lock()
	l.facts = f
	l.mu.Unlock()
	return nil
}

// nextSeq hands out the next report number, reserving more when the range
// runs out.
func (l *Link) nextSeq(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	if l.seq >= l.facts.Seq {
		l.mu.Unlock()
		if err := l.reserve(ctx); err != nil {
			return 0, err
		}
		l.mu.Lock()
	}
	s := l.seq
	l.seq++
	l.mu.Unlock()
	return s, nil
}

// backoff returns the wait before attempt n (from 0): doubling from
// BackoffMin, capped at BackoffMax, jittered ×0.5–1.5.
func (l *Link) backoff(n int) time.Duration {
	d := l.cfg.BackoffMin
	for i := 0; i < n && d < l.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, l.cfg.BackoffMax)
	return time.Duration(float64(d) * (0.5 + l.cfg.Jitter()))
}

// sleep waits d on the link's clock, or until ctx ends.
func (l *Link) sleep(ctx context.Context, d time.Duration) error {
	t := l.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Link) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if l.cfg.CA != "" {
		pem, err := os.ReadFile(l.cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("mqttlink: CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqttlink: CA %s: no certificate", l.cfg.CA)
		}
	}
	if l.cfg.Cert != "" || l.cfg.Key != "" {
		c, err := tls.LoadX509KeyPair(l.cfg.Cert, l.cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("mqttlink: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// connectLoop connects, waits for the connection to be lost, and connects
// again after a jittered, growing wait, until ctx ends.
func (l *Link) connectLoop(ctx context.Context) error {
	tc, err := l.tlsConfig()
	if err != nil {
		return err
	}
	will, _ := json.Marshal(LinkState{Online: false})
	for attempt := 0; ; {
		c, err := l.dial(ctx, tc, will)
		if err == nil {
			err = l.onConnect(ctx, c)
			if err != nil {
				c.Disconnect()
			}
		}
		if err == nil {
			attempt = 0
			l.log.Info("connected", slog.String("broker", l.cfg.Broker))
			select {
			case <-c.Done():
				l.log.Warn("connection lost", slog.Any("err", c.Err()))
			case <-ctx.Done():
			}
			l.mu.Lock()
			l.client = nil
			l.mu.Unlock()
			if ctx.Err() != nil {
				// A clean stop: the broker publishes no will for a
				// disconnect, so say offline ourselves.
				if c.IsConnected() {
					pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					c.Publish(pctx, l.topics.Link, 1, true, will)
					cancel()
				}
				c.Disconnect()
				return ctx.Err()
			}
			c.Disconnect()
		} else {
			l.log.Warn("cannot connect", slog.String("broker", l.cfg.Broker), slog.Any("err", err))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := l.sleep(ctx, l.backoff(attempt)); err != nil {
			return err
		}
		attempt++
	}
}

// dial connects to the broker (tcp://, or ssl://, tls://, mqtts:// with
// TLS) and opens a session with the link's own MQTT client (internal/mqttc,
// which keeps net/http out of the meter binary): clean session false, so
// the broker keeps our subscriptions and QoS 1 messages while the link is
// down. A report not acknowledged before the connection dropped is sent
// again by the link itself (the full report on every connect).
func (l *Link) dial(ctx context.Context, tc *tls.Config, will []byte) (*mqttc.Client, error) {
	scheme, addr, ok := strings.Cut(l.cfg.Broker, "://")
	if !ok {
		scheme, addr = "tcp", l.cfg.Broker
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	var conn net.Conn
	var err error
	switch scheme {
	case "tcp", "mqtt":
		conn, err = d.DialContext(ctx, "tcp", addr)
	case "ssl", "tls", "mqtts":
		tc := tc.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tc.ServerName = host
			}
		}
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tc}).DialContext(ctx, "tcp", addr)
	default:
		return nil, fmt.Errorf("mqttlink: broker %q: unknown scheme %q", l.cfg.Broker, scheme)
	}
	if err != nil {
		return nil, err
	}
	return mqttc.Connect(ctx, conn, mqttc.Options{
		ClientID:  l.cfg.ID,
		KeepAlive: l.cfg.KeepAlive,
		Will:      &mqttc.Message{Topic: l.topics.Link, Payload: will, QoS: 1, Retain: true},
		Username:  l.cfg.Username,
		Password:  l.cfg.Password,
		Handler:   l.onMessage,
	})
}

// onConnect subscribes and publishes the full reported state.
func (l *Link) onConnect(ctx context.Context, c *mqttc.Client) error {
	subs := map[string]byte{l.topics.Delta: 1, l.topics.Accepted: 1, l.topics.StreamData: 1, l.topics.Revoked: 1}
	if err := c.Subscribe(ctx, subs); err != nil {
		return fmt.Errorf("mqttlink: subscribe: %w", err)
	}
	l.mu.Lock()
	l.client = c
	l.lastState = "" // the full report goes out now
	l.mu.Unlock()
	online, _ := json.Marshal(LinkState{Online: true, Agent: l.cfg.Agent})
	if err := c.Publish(ctx, l.topics.Link, 1, true, online); err != nil {
		return err
	}
	return l.report(ctx, true)
}

// onMessage routes what the broker delivers. It never blocks the client.
func (l *Link) onMessage(topic string, payload []byte) {
	switch topic {
	case l.topics.Revoked:
		select {
		case l.revoked <- payload:
		default: // one is being applied; the retained copy comes again at the next connect
		}
	case l.topics.Delta:
		// Only the newest desired document matters: a newer one
		// replaces one not yet taken.
		select {
		case l.desired <- payload:
		default:
			select {
			case <-l.desired:
			default:
			}
			select {
			case l.desired <- payload:
			default:
			}
		}
	case l.topics.Accepted:
		var a Accepted
		if len(payload) <= 256 && json.Unmarshal(payload, &a) == nil {
			l.mu.Lock()
			l.accepted = max(l.accepted, a.Seq)
			l.mu.Unlock()
		}
	case l.topics.StreamData:
		l.stream.Deliver(payload)
	}
}

func (l *Link) publish(ctx context.Context, topic string, payload []byte) error {
	l.mu.Lock()
	c := l.client
	l.mu.Unlock()
	if c == nil {
		return errNotConnected
	}
	return c.Publish(ctx, topic, 1, false, payload)
}

var errNotConnected = errors.New("mqttlink: not connected")

func (l *Link) publishStreamGet(ctx context.Context, get []byte) error {
	return l.publish(ctx, l.topics.StreamGet, get)
}

// followNode turns the node's events into reports.
func (l *Link) followNode(ctx context.Context) {
	for ctx.Err() == nil {
		var prev *agent.Status // the previous event's status
		_, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "events"}, func(ev localapi.Event) {
			st := ev.Status
			if ev.Kind == "console" {
				// Logins and lockouts at the technician's port go to
				// the head-end as they happen.
				if b, err := json.Marshal(NodeEvent{Kind: ev.Kind, Message: ev.Message, Unix: l.cfg.Clock.Now().Unix()}); err == nil {
					select {
					case l.events <- b:
					default: // the head-end link is slow: the node's operational ring keeps them
					}
				}
				return
			}
			l.mu.Lock()
			// A state the node passed through quickly (installing,
			// activating…) is still reported, in order: the head-end
			// needs every state, not only the latest.
			if prev == nil || prev.State != st.State || prev.Job != st.Job {
				if len(l.passed) < maxPassed {
					l.passed = append(l.passed, st)
				}
			}
			l.status = &st
			prev = &st
			l.mu.Unlock()
			l.poke()
		})
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("node events ended; following again", slog.Any("err", err))
		if l.sleep(ctx, time.Second) != nil {
			return
		}
	}
}

// poke wakes the worker to report.
func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// current returns the status to report: the node's, under the link's
// override while the node does not know the job yet.
func (l *Link) current(ctx context.Context) (agent.Status, error) {
	l.mu.Lock()
	st := l.status
	l.mu.Unlock()
	return l.currentFrom(ctx, st)
}

// currentFrom is current on the node's status st (nil: ask the node).
func (l *Link) currentFrom(ctx context.Context, st *agent.Status) (agent.Status, error) {
	l.mu.Lock()
	over := l.over
	l.mu.Unlock()
	if st == nil {
		v, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "status"}, nil)
		if err != nil {
			return agent.Status{}, err
		}
		s, ok := v.(agent.Status)
		if !ok {
			return agent.Status{}, fmt.Errorf("mqttlink: the node answered status with %T", v)
		}
		st = &s
		l.mu.Lock()
		l.status = st
		l.mu.Unlock()
	}
	out := *st
	if over != nil && !nodeKnows(st, over.job) {
		out.Job, out.State, out.Progress, out.Result, out.Reason = over.job, over.state, over.progress, over.result, over.reason
	} else if over != nil {
		// The node has taken the job over: its state is the truth now.
		l.mu.Lock()
		if l.over == over {
			l.over = nil
		}
		l.mu.Unlock()
	}
	return out, nil
}

// nodeKnows reports whether the node's status speaks of job: it holds it
// as its update, or as its last result.
func nodeKnows(st *agent.Status, job string) bool {
	return job != "" && st.Job == job && (st.Update != nil || st.Last != nil && st.Last.Job == job)
}

// final reports whether a state ends a job.
func final(state string) bool {
	switch state {
	case agent.StateCommitted, agent.StateRolledBack, agent.StateFellBack, agent.StateFailed:
		return true
	}
	return false
}

// report publishes the current status if it changed state (or job), or if
// progress is due, or always when full is set (a new connection).
func (l *Link) report(ctx context.Context, full bool) error {
	// One report at a time (the worker and a new connection both report),
	// and the states passed through with the status they led to, taken
	// together: the status is never newer than the states sent before it.
	l.reportMu.Lock()
	defer l.reportMu.Unlock()
	l.mu.Lock()
	passed := l.passed
	l.passed = nil
	snap := l.status
	connected := l.client != nil
	l.mu.Unlock()
	if connected && !full {
		for _, st := range passed {
			l.mu.Lock()
			same := st.State == l.lastState && st.Job == l.lastJob
			over := l.over
			l.mu.Unlock()
			if same || over != nil && !nodeKnows(&st, over.job) {
				continue
			}
			if err := l.send(ctx, st); err != nil {
				return err
			}
		}
	}
	st, err := l.currentFrom(ctx, snap)
	if err != nil {
		return err
	}
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	changed := st.State != l.lastState || st.Job != l.lastJob
	due := st.Progress != nil && now.Sub(l.lastSent) >= l.cfg.ProgressEvery
	resend := l.finalSeq != 0 && l.accepted < l.finalSeq && now.Sub(l.lastSent) >= l.cfg.BackoffMax
	connected = l.client != nil
	l.mu.Unlock()
	if !connected || !(full || changed || due || resend) {
		return nil
	}
	return l.send(ctx, st)
}

// send publishes one report.
func (l *Link) send(ctx context.Context, st agent.Status) error {
	if st.Agent == "" {
		st.Agent = l.cfg.Agent
	}
	seq, err := l.nextSeq(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(Report{Seq: seq, Reported: st})
	if err != nil {
		return err
	}
	if err := l.publish(ctx, l.topics.Update, b); err != nil {
		return err
	}
	l.mu.Lock()
	l.lastState, l.lastJob, l.lastSent = st.State, st.Job, l.cfg.Clock.Now()
	if final(st.State) && st.Result != 0 {
		l.finalSeq = seq
	}
	l.mu.Unlock()
	return nil
}

// sendRefusal reports a desired document refused or ignored: the node's
// state as it is, with the result and reason of the refusal.
func (l *Link) sendRefusal(ctx context.Context, job string, result shadow.Result, reason string) {
	st, err := l.current(ctx)
	if err != nil {
		return
	}
	if job != "" {
		st.Job = job
	}
	st.Result, st.Reason = int(result), reason
	if err := l.send(ctx, st); err != nil {
		l.log.Warn("report not sent", slog.Any("err", err))
	}
}

// work takes desired documents and wake-ups, one at a time.
func (l *Link) work(ctx context.Context) {
	tick := l.cfg.Clock.NewTimer(l.cfg.ProgressEvery)
	defer func() { tick.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-l.desired:
			l.onDesired(ctx, b)
		case b := <-l.revoked:
			l.onRevoked(ctx, b)
		case b := <-l.events:
			if err := l.publish(ctx, l.topics.Event, b); err != nil && ctx.Err() == nil {
				l.log.Info("node event not sent", slog.Any("err", err))
			}
		case <-l.wake:
		case <-tick.C():
			tick = l.cfg.Clock.NewTimer(l.cfg.ProgressEvery)
		}
		if err := l.report(ctx, false); err != nil && !errors.Is(err, errNotConnected) && ctx.Err() == nil {
			l.log.Warn("report not sent", slog.Any("err", err))
		}
	}
}

// cleanStale removes fetch directories of jobs other than the current one
// (a node updated over 15 years must not fill its store).
func (l *Link) cleanStale() {
	dir := filepath.Join(l.cfg.StoreDir, "dl")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	keep := sanitize(l.facts.Job)
	for _, e := range ents {
		if e.Name() != keep {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Revocations is the retained document on state/<id>/revoked: the ids
// (cti, hex) of the technician tokens the utility has revoked. The node
// refuses them at the console, also on a session already open.
type Revocations struct {
	Revoked []string `json:"revoked"`
}

// maxRevocationDoc bounds the revocation document (4,096 ids of 32 hex
// digits with JSON punctuation fit).
const maxRevocationDoc = 160 << 10

func (l *Link) onRevoked(ctx context.Context, b []byte) {
	var r Revocations
	if len(b) > maxRevocationDoc || json.Unmarshal(b, &r) != nil {
		l.log.Warn("revocation list refused: not the documented JSON, or too large", slog.Int("bytes", len(b)))
		return
	}
	if r.Revoked == nil {
		r.Revoked = []string{}
	}
	if _, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "revoke", Revoked: r.Revoked}, nil); err != nil {
		l.log.Warn("revocation list refused", slog.Any("err", err))
	}
}

// NodeEvent is published on state/<id>/event: something the head-end is
// told as it happens, apart from the update's state (technician logins and
// lockouts at the console).
type NodeEvent struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Unix    int64  `json:"unix"`
}
