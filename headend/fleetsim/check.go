package fleetsim

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"meterupd/agent"
	"meterupd/boards/sim"
	"meterupd/headend"
	"meterupd/manifest"
	"meterupd/pkgbuild"
)

// Release describes the package a simulated fleet is updated with.
type Release struct {
	// From is the fleet's factory version, To the new one (default 2.0).
	From, To string
	// DeviceType of the fleet (default em300).
	DeviceType string
	// ImageSize as the fleet's (default DefaultImageSize).
	ImageSize int
	// Sequence is the package's signed sequence number (default 1).
	Sequence uint64
}

// WriteRelease builds and signs, at path, the release of a simulated
// fleet: one delta item From→To per hardware class — for Hardware a good
// image, for FailHardware one that fails its health check (sim's
// MarkUnhealthy). The node picks its item by its hardware revision, as
// any node does from a manifest.
func WriteRelease(path string, r Release, signer crypto.Signer) error {
	r.From = or(r.From, "1.0")
	r.To = or(r.To, "2.0")
	r.DeviceType = or(r.DeviceType, "em300")
	if r.ImageSize == 0 {
		r.ImageSize = DefaultImageSize
	}
	if r.Sequence == 0 {
		r.Sequence = 1
	}
	dir, err := os.MkdirTemp("", "fleetsim-release")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	imgs := map[string][]byte{
		"old.img":  sim.Image(r.ImageSize, r.From),
		"new.img":  sim.Image(r.ImageSize, r.To),
		"fail.img": sim.Image(r.ImageSize, r.To, sim.MarkUnhealthy),
	}
	for name, b := range imgs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	system, delta := manifest.ComponentSystem, manifest.KindDelta
	item := func(id, img string, hw manifest.HardwareRange) pkgbuild.SpecItem {
		return pkgbuild.SpecItem{ID: id, Component: &system, Kind: &delta, From: r.From, To: r.To, Old: "old.img", New: img,
			DeviceTypes: []string{r.DeviceType}, Hardware: &hw,
			Checks:     []manifest.Check{{Kind: "device-type"}, {Kind: "hardware"}, {Kind: "source-version"}, {Kind: "source-digest"}},
			Thresholds: &manifest.Thresholds{Stop: 1}}
	}
	spec := &pkgbuild.Spec{Sequence: r.Sequence, VendorID: VendorID, ClassID: ClassID, Items: []pkgbuild.SpecItem{
		item("sys-"+r.To, "new.img", manifest.HardwareRange{Min: 1, Max: FailHardware - 1}),
		item("sys-"+r.To+"-rev9", "fail.img", manifest.HardwareRange{Min: FailHardware, Max: FailHardware}),
	}}
	b, err := pkgbuild.Build(spec, dir)
	if err != nil {
		return err
	}
	_, err = b.WriteFile(path, signer)
	return err
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Outcome is what a node's own journal says of one job.
type Outcome struct {
	ID    string
	Fails bool
	// Result is the job's last result in the journal (committed,
	// rolled-back, fell-back, abandoned), "" when none.
	Result agent.ResultCode
	// Version is the version of the node's primary set at the end.
	Version string
	// Installs counts the updates of the job begun, Activations the
	// times its trial was armed, Results the updates of it ended: one
	// each for a job done once.
	Installs, Activations, Results int
	// Wrapped: the journal no longer holds the record before the job
	// began (its oldest records were erased), so the counts may miss some.
	Wrapped bool
	Err     string
}

// Summarise reads a node's journal history for job.
func Summarise(id string, fails bool, h []agent.HistoryEntry, job string) Outcome {
	o := Outcome{ID: id, Fails: fails}
	var prev *agent.Record
	first := true
	for _, e := range h {
		r := e.Record
		if r == nil {
			continue // a record that does not decode: History says why
		}
		inJob := r.Update != nil && r.Update.ID == job
		lastJob := r.Last != nil && r.Last.ID == job
		if first {
			o.Wrapped = inJob || lastJob
			first = false
		}
		prevIn := prev != nil && prev.Update != nil && prev.Update.ID == job
		if inJob && !prevIn {
			o.Installs++
		}
		if inJob && r.Update.Phase == agent.Activating && !(prevIn && prev.Update.Phase == agent.Activating) {
			o.Activations++
		}
		prevLast := prev != nil && prev.Last != nil && prev.Last.ID == job
		switch {
		case prevIn && !inJob && lastJob:
			o.Results++ // an update of the job ended
		case !prevIn && !inJob && lastJob && !prevLast:
			o.Results++ // a result without an update (refused before installing)
		}
		if lastJob {
			o.Result = r.Last.Code
		}
		if si := r.Slots[r.Primary]; si != nil {
			o.Version = si.Version
		}
		prev = r
	}
	return o
}

// Outcomes reads every running node's journal for job.
func (f *Fleet) Outcomes(ctx context.Context, job string) []Outcome {
	out := make([]Outcome, 0, len(f.nodes))
	for _, n := range f.nodes {
		h, err := n.Journal(ctx)
		if err != nil {
			out = append(out, Outcome{ID: n.ID, Fails: n.Fails, Err: err.Error()})
			continue
		}
		out = append(out, Summarise(n.ID, n.Fails, h, job))
	}
	return out
}

// Summary compares the nodes' journals with what the head-end recorded.
type Summary struct {
	Nodes int
	// Committed and RolledBack count nodes whose journal and head-end
	// agree on that result.
	Committed, RolledBack int
	// Unreachable: the campaign gave up on the node (wave timeout).
	Unreachable int
	// Failed: a node that ended other than its image dictates (a healthy
	// one not committed, a failing one not rolled back), ended with
	// another result, or has not ended yet.
	Failed int
	// Lost: a node whose final result the head-end does not have, or has
	// other than the node's journal.
	Lost int
	// Duplicated: a node that acted on the job more than once (installs,
	// activations or results per job in its journal).
	Duplicated int
	// Wrapped: journals that no longer reach back to the job's start.
	Wrapped int
	// Problems are the first sentences on what did not match.
	Problems []string
}

const maxProblems = 20

func (s *Summary) problem(format string, a ...any) {
	if len(s.Problems) < maxProblems {
		s.Problems = append(s.Problems, fmt.Sprintf(format, a...))
	}
}

// Check compares each node's outcome of job (its journal) with the
// head-end's campaign targets and node table.
func Check(job string, outs []Outcome, targets []headend.Target, nodes []headend.Node) Summary {
	ts := map[string]headend.Target{}
	for _, t := range targets {
		ts[t.Node] = t
	}
	ns := map[string]headend.Node{}
	for _, n := range nodes {
		ns[n.ID] = n
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].ID < outs[j].ID })
	s := Summary{Nodes: len(outs)}
	for _, o := range outs {
		if o.Err != "" {
			s.Failed++
			s.problem("%s: journal unreadable: %s", o.ID, o.Err)
			continue
		}
		if o.Wrapped {
			s.Wrapped++
			s.problem("%s: the journal no longer holds the job's start", o.ID)
		}
		if o.Installs > 1 || o.Activations > 1 || o.Results > 1 {
			s.Duplicated++
			s.problem("%s: acted on %s more than once: %d installs, %d activations, %d results", o.ID, job, o.Installs, o.Activations, o.Results)
		}
		t, inCampaign := ts[o.ID]
		hn := ns[o.ID]
		acted := o.Installs > 0 || o.Results > 0
		switch {
		case !inCampaign || t.State == headend.TargetPending || t.State == headend.TargetCancelled:
			if acted {
				s.Lost++
				s.problem("%s: the journal holds %s (result %q) the head-end never sent it", o.ID, job, o.Result)
			}
			continue
		case t.State == headend.TargetUnreachable:
			s.Unreachable++
			continue
		case t.State == headend.TargetSent:
			if o.Result != "" {
				s.Lost++
				s.problem("%s: the journal says %s, the head-end still waits for it", o.ID, o.Result)
			} else {
				s.Failed++
				s.problem("%s: has not finished %s", o.ID, job)
			}
			continue
		}
		// The target is final: the head-end must hold the journal's result.
		want := headend.TargetFailed
		if o.Result == agent.Committed {
			want = headend.TargetCommitted
		}
		if o.Result == "" || t.State != want || hn.Job != job || hn.State != string(o.Result) {
			s.Lost++
			s.problem("%s: the journal says %q, the head-end holds target %s, node job %q state %q", o.ID, o.Result, t.State, hn.Job, hn.State)
			continue
		}
		switch {
		case o.Result == agent.Committed && !o.Fails:
			s.Committed++
		case o.Result == agent.RolledBack && o.Fails:
			s.RolledBack++
		default:
			s.Failed++
			s.problem("%s: ended %s, running %s (failing image: %v)", o.ID, o.Result, o.Version, o.Fails)
		}
	}
	return s
}
