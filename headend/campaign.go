package headend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"meterupd/shadow"
)

// Selector picks a campaign's nodes: `device_type=em300,version=1.0`.
// Every key given must match; an empty selector picks every node.
type Selector struct {
	DeviceType string
	Version    string
	IDPrefix   string
}

// ParseSelector parses a selector: comma-separated key=value pairs with
// the keys device_type, version and id (a prefix of the node id).
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return Selector{}, fmt.Errorf("%w: selector %q: want key=value", ErrBadInput, kv)
		}
		switch k {
		case "device_type":
			sel.DeviceType = v
		case "version":
			sel.Version = v
		case "id":
			sel.IDPrefix = v
		default:
			return Selector{}, fmt.Errorf("%w: selector key %q (device_type, version, id)", ErrBadInput, k)
		}
	}
	return sel, nil
}

// Match reports whether node n is selected.
func (s Selector) Match(n Node) bool {
	return (s.DeviceType == "" || n.DeviceType == s.DeviceType) &&
		(s.Version == "" || n.Version == s.Version) &&
		strings.HasPrefix(n.ID, s.IDPrefix)
}

// ParseWaves parses cumulative wave sizes, e.g. "1%,10%,100%": each above
// the one before, the last 100%.
func ParseWaves(s string) ([]float64, error) {
	var out []float64
	for _, w := range strings.Split(s, ",") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(w), "%"), 64)
		if err != nil || !(f > 0 && f <= 100) || (len(out) > 0 && f <= out[len(out)-1]) { // !(…) refuses NaN
			return nil, fmt.Errorf("%w: waves %q: rising percentages up to 100%%", ErrBadInput, s)
		}
		out = append(out, f)
	}
	if len(out) == 0 || out[len(out)-1] != 100 {
		return nil, fmt.Errorf("%w: waves %q: the last wave must be 100%%", ErrBadInput, s)
	}
	return out, nil
}

// Campaigns runs campaigns: it sends each wave's nodes their desired
// document, at most MaxInflight at a time, moves to the next wave when
// every node of this one has committed, failed or timed out, and halts a
// campaign whose failures pass its threshold. Every step is a conditional
// store update, so several instances may run Tick on one store: a node is
// sent its job once, a wave is left once.
type Campaigns struct {
	Store    Store
	Replica  *Replica
	Packages *Packages
	BaseURL  string // of the package server, e.g. http://10.0.0.1:8080
	Log      *slog.Logger
	Now      func() time.Time
	// ResendAfter is how long a sent node may go without reporting on
	// its job before its document is published again (the instance that
	// sent it may have stopped between recording and publishing); 0: 30s.
	// The copy has the same version: a node that has it ignores it.
	ResendAfter time.Duration
	// Tailor tailors packages per group for campaigns in tailor mode.
	Tailor *Tailor
}

// DefaultWaveTimeout is how long a node of a wave may stay silent.
const DefaultWaveTimeout = 6 * time.Hour

// Create records campaign c (Package, Select, Activate, Waves, HaltAbove,
// MaxInflight, WaveTimeout, Stream) over the nodes its selector picks now.
func (m *Campaigns) Create(ctx context.Context, c Campaign) (Campaign, error) {
	if err := checkNodeID(c.ID); err != nil {
		return Campaign{}, fmt.Errorf("%w: campaign id %q", ErrBadInput, c.ID)
	}
	if _, err := m.Packages.Stat(c.Package); err != nil {
		return Campaign{}, err
	}
	if c.Tailor {
		// The package must carry a signed manifest a desired document
		// can hold.
		if _, err := envelope(m.Packages, c.Package); err != nil {
			return Campaign{}, err
		}
	}
	sel, err := ParseSelector(c.Select)
	if err != nil {
		return Campaign{}, err
	}
	probe := shadow.Desired{Job: c.ID, Activate: c.Activate, Cancel: true}
	if _, _, err := probe.Activation(); err != nil {
		return Campaign{}, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if len(c.Waves) == 0 {
		c.Waves = []float64{100}
	}
	if c.WaveTimeout <= 0 {
		c.WaveTimeout = DefaultWaveTimeout
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 100
	}
	if !(c.HaltAbove >= 0 && c.HaltAbove <= 100) { // !(…) refuses NaN
		return Campaign{}, fmt.Errorf("%w: halt-above %v%%", ErrBadInput, c.HaltAbove)
	}
	nodes, err := m.Store.Nodes(ctx)
	if err != nil {
		return Campaign{}, err
	}
	var picked []string
	for _, n := range nodes {
		if sel.Match(n) {
			picked = append(picked, n.ID)
		}
	}
	if len(picked) == 0 {
		return Campaign{}, fmt.Errorf("%w: no node matches %q", ErrNotFound, c.Select)
	}
	now := m.Now()
	c.State, c.Wave, c.Created = CampaignCreated, 0, now
	targets := make([]Target, len(picked))
	wave := 0
	for i, id := range picked {
		// Cumulative: wave w ends at ceil(Waves[w]% of the nodes).
		for wave < len(c.Waves)-1 && i >= int(math.Ceil(c.Waves[wave]/100*float64(len(picked)))) {
			wave++
		}
		targets[i] = Target{Campaign: c.ID, Node: id, Wave: wave, State: TargetPending, Since: now}
	}
	if err := m.Store.CreateCampaign(ctx, c, targets); err != nil {
		return Campaign{}, err
	}
	return c, nil
}

// Start starts a created campaign.
func (m *Campaigns) Start(ctx context.Context, id string) error {
	return m.Store.SetCampaignState(ctx, id, CampaignRunning, "", CampaignCreated)
}

// Pause stops sending new nodes their job; nodes already sent finish.
func (m *Campaigns) Pause(ctx context.Context, id string) error {
	return m.Store.SetCampaignState(ctx, id, CampaignPaused, "paused by the operator", CampaignRunning)
}

// Resume continues a paused or halted campaign. The failures so far are
// accepted: the halt threshold counts only new ones, so a campaign the
// operator resumed after a look does not halt again at once.
func (m *Campaigns) Resume(ctx context.Context, id string) error {
	ts, err := m.Store.Targets(ctx, id)
	if err != nil {
		return err
	}
	failed := 0
	for _, t := range ts {
		if t.State == TargetFailed {
			failed++
		}
	}
	return m.Store.ResumeCampaign(ctx, id, failed)
}

// Cancel ends a campaign: nodes not yet sent their job are not; nodes
// sent it are sent a cancel by the next Tick (a node abandons a job not
// yet activated, result 109), and their final results are still recorded.
// It needs the store alone, so an operator's command can do it.
func (m *Campaigns) Cancel(ctx context.Context, id string) error {
	if err := m.Store.SetCampaignState(ctx, id, CampaignCancelled, "cancelled by the operator",
		CampaignCreated, CampaignRunning, CampaignPaused, CampaignHalted); err != nil {
		return err
	}
	ts, err := m.Store.Targets(ctx, id)
	if err != nil {
		return err
	}
	now := m.Now()
	for _, t := range ts {
		if t.State == TargetPending {
			if _, err := m.Store.MoveTarget(ctx, id, t.Node, TargetPending, TargetCancelled, 0, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// cancelSent sends a cancel to the nodes of cancelled campaign c that
// were sent its job and have not got the cancel yet.
func (m *Campaigns) cancelSent(ctx context.Context, c Campaign) error {
	ts, err := m.Store.Targets(ctx, c.ID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.State != TargetSent {
			continue
		}
		d, err := m.Store.Desired(ctx, t.Node)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && d.Desired.Job == c.ID && d.Desired.Cancel {
			continue
		}
		if _, err := m.Replica.SetDesired(ctx, t.Node, shadow.Desired{Job: c.ID, Cancel: true}); err != nil {
			return err
		}
	}
	return nil
}

// Status is what an operator sees of a campaign.
type Status struct {
	Campaign Campaign            `json:"campaign"`
	Total    int                 `json:"total"`
	Counts   map[TargetState]int `json:"counts"`
	Waves    []WaveStatus        `json:"waves"`
}

// WaveStatus counts one wave's nodes by state.
type WaveStatus struct {
	Nodes  int                 `json:"nodes"`
	Counts map[TargetState]int `json:"counts"`
}

// Done is the number of nodes in a final state.
func (s Status) Done() int {
	n := 0
	for st, c := range s.Counts {
		if st.Final() {
			n += c
		}
	}
	return n
}

// Status returns campaign id's counts.
func (m *Campaigns) Status(ctx context.Context, id string) (Status, error) {
	c, err := m.Store.Campaign(ctx, id)
	if err != nil {
		return Status{}, err
	}
	ts, err := m.Store.Targets(ctx, id)
	if err != nil {
		return Status{}, err
	}
	return status(c, ts), nil
}

func status(c Campaign, ts []Target) Status {
	s := Status{Campaign: c, Total: len(ts), Counts: map[TargetState]int{}, Waves: make([]WaveStatus, len(c.Waves))}
	for i := range s.Waves {
		s.Waves[i].Counts = map[TargetState]int{}
	}
	for _, t := range ts {
		s.Counts[t.State]++
		if t.Wave < len(s.Waves) {
			s.Waves[t.Wave].Nodes++
			s.Waves[t.Wave].Counts[t.State]++
		}
	}
	return s
}

// OnReport moves a campaign's node to its final state when its report
// says the job ended. The job id of a campaign is the campaign's id.
func (m *Campaigns) OnReport(ctx context.Context, node string, rep Reported) {
	to, ok := outcome(rep)
	if !ok || rep.Job == "" {
		return
	}
	if _, err := m.Store.MoveTarget(ctx, rep.Job, node, TargetSent, to, rep.Result, m.Now()); err != nil {
		m.Log.Error("campaign target not moved", slog.String("node", node), slog.String("job", rep.Job), slog.Any("err", err))
	}
}

// outcome is the final target state a report shows, if it shows one.
func outcome(rep Reported) (TargetState, bool) {
	switch rep.State {
	case "committed":
		if rep.Result == shadow.ResultSuccess || rep.Result == shadow.ResultVetoForced || rep.Result == shadow.ResultDeferExpired {
			return TargetCommitted, true
		}
	case "rolled-back", "fell-back", "failed":
		return TargetFailed, true
	}
	switch rep.Result {
	case shadow.ResultCancelled:
		return TargetCancelled, true
	case shadow.ResultNoStorage, shadow.ResultOutOfMemory, shadow.ResultIntegrity, shadow.ResultUnsupportedType,
		shadow.ResultInvalidURI, shadow.ResultUpdateFailed, shadow.ResultUnsupportedProto, shadow.ResultRolledBack,
		shadow.ResultFellBack, shadow.ResultSignature, shadow.ResultReplay, shadow.ResultNotApplicable,
		shadow.ResultValidation, shadow.ResultBadDocument, shadow.ResultDowngrade, shadow.ResultPowerSource:
		return TargetFailed, true
	}
	return "", false
}

// Tick advances every running campaign one step. It is safe to run on
// several instances at once.
func (m *Campaigns) Tick(ctx context.Context) error {
	cs, err := m.Store.Campaigns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		var err error
		switch c.State {
		case CampaignRunning:
			err = m.tick(ctx, c)
		case CampaignCancelled:
			err = m.cancelSent(ctx, c)
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, fmt.Errorf("campaign %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Campaigns) tick(ctx context.Context, c Campaign) error {
	ts, err := m.Store.Targets(ctx, c.ID)
	if err != nil {
		return err
	}
	now := m.Now()
	inflight, started, failed := 0, 0, 0
	var pending []Target
	waveDone := true
	for i := range ts {
		t := &ts[i]
		if t.Wave > c.Wave {
			continue
		}
		started++
		if t.State == TargetSent {
			n, err := m.Store.Node(ctx, t.Node)
			if err != nil {
				return err
			}
			// The node's last report may have ended the job while the
			// instance that recorded it stopped before moving the target.
			if to, ok := outcome(Reported{Job: n.Job, State: n.State, Result: n.Result}); ok && n.Job == c.ID {
				if ok, err := m.Store.MoveTarget(ctx, c.ID, t.Node, TargetSent, to, n.Result, now); err != nil {
					return err
				} else if ok {
					t.State = to
				}
			}
		}
		if t.State == TargetSent {
			n, err := m.Store.Node(ctx, t.Node)
			if err != nil {
				return err
			}
			heard := t.Since
			if n.LastReport.After(heard) {
				heard = n.LastReport
			}
			if now.Sub(heard) > c.WaveTimeout {
				if ok, err := m.Store.MoveTarget(ctx, c.ID, t.Node, TargetSent, TargetUnreachable, n.Result, now); err != nil {
					return err
				} else if ok {
					t.State = TargetUnreachable
				}
			} else if n.Job != c.ID && now.Sub(t.Since) > cmp.Or(m.ResendAfter, 30*time.Second) {
				if err := m.ensureSent(ctx, c, t.Node); err != nil {
					return err
				}
			}
		}
		switch t.State {
		case TargetSent:
			inflight++
		case TargetPending:
			pending = append(pending, *t)
		case TargetFailed:
			failed++
		}
		if !t.State.Final() {
			waveDone = false
		}
	}
	if started > 0 && c.HaltAbove > 0 && float64(failed-c.AcceptedFailures)*100/float64(started) > c.HaltAbove {
		reason := fmt.Sprintf("%d of %d nodes failed, above %.3g%%", failed-c.AcceptedFailures, started, c.HaltAbove)
		if c.AcceptedFailures > 0 {
			reason += fmt.Sprintf(" (beyond %d accepted at resume)", c.AcceptedFailures)
		}
		m.Log.Warn("campaign halted", slog.String("campaign", c.ID), slog.String("reason", reason))
		return m.Store.SetCampaignState(ctx, c.ID, CampaignHalted, reason, CampaignRunning)
	}
	if waveDone {
		if c.Wave+1 >= len(c.Waves) {
			return m.Store.SetCampaignState(ctx, c.ID, CampaignDone, "", CampaignRunning)
		}
		return m.Store.SetCampaignWave(ctx, c.ID, c.Wave, c.Wave+1)
	}
	for _, t := range pending {
		if inflight >= c.MaxInflight {
			break
		}
		ok, err := m.Store.MoveTarget(ctx, c.ID, t.Node, TargetPending, TargetSent, 0, now)
		if err != nil {
			return err
		}
		if !ok {
			continue // another instance took it
		}
		inflight++
		if err := m.send(ctx, c, t.Node); err != nil {
			return err
		}
	}
	return nil
}

// desired is what campaign c wants of a node: the package, or in tailor
// mode the signed manifest alone (the node answers with its request).
func (m *Campaigns) desired(c Campaign) (shadow.Desired, error) {
	if c.Tailor {
		env, err := envelope(m.Packages, c.Package)
		if err != nil {
			return shadow.Desired{}, err
		}
		return shadow.Desired{Job: c.ID, Manifest: env, Activate: c.Activate}, nil
	}
	p, err := m.Packages.Stat(c.Package)
	if err != nil {
		return shadow.Desired{}, err
	}
	return shadow.Desired{Job: c.ID, Package: m.packageRef(c, p), Activate: c.Activate}, nil
}

// packageRef is where a node of campaign c fetches package p.
func (m *Campaigns) packageRef(c Campaign, p Package) *shadow.PackageRef {
	ref := &shadow.PackageRef{SHA256: p.SHA256, Size: p.Size}
	if c.Stream {
		ref.Stream = p.Name
	} else {
		ref.URL = strings.TrimSuffix(m.BaseURL, "/") + "/pkg/" + p.Name
	}
	return ref
}

func (m *Campaigns) send(ctx context.Context, c Campaign, node string) error {
	d, err := m.desired(c)
	if err != nil {
		return err
	}
	_, err = m.Replica.SetDesired(ctx, node, d)
	return err
}

// ensureSent publishes the campaign's document to a sent node that has
// not reported on its job: the recorded one again (same version), or a
// new one when none was recorded.
func (m *Campaigns) ensureSent(ctx context.Context, c Campaign, node string) error {
	d, err := m.Store.Desired(ctx, node)
	if err == nil && d.Desired.Job == c.ID {
		return m.Replica.publishDelta(ctx, node, d)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return m.send(ctx, c, node)
}

// Run ticks every interval until ctx ends.
func (m *Campaigns) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
			m.Log.Error("campaign tick", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sortedStates lists the target states in display order.
var sortedStates = []TargetState{TargetPending, TargetSent, TargetCommitted, TargetFailed, TargetUnreachable, TargetCancelled}

// States returns the states in display order.
func States() []TargetState { return slices.Clone(sortedStates) }
