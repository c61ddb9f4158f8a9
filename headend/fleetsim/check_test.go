package fleetsim

import (
	"reflect"
	"testing"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/headend"
)

// journal builds a history: each step is an update phase ("" for none)
// and the last result's code for job j ("" for none).
func journal(steps ...[2]string) []agent.HistoryEntry {
	var h []agent.HistoryEntry
	for i, s := range steps {
		r := &agent.Record{Version: 1, Primary: hw.SlotA, Slots: map[hw.Slot]*agent.SlotInfo{hw.SlotA: {Version: "1.0"}}}
		if s[0] != "" {
			r.Update = &agent.Update{ID: "j", Phase: agent.Phase(s[0])}
		}
		if s[1] != "" {
			r.Last = &agent.Result{ID: "j", Code: agent.ResultCode(s[1])}
		}
		h = append(h, agent.HistoryEntry{Seq: uint64(i + 1), Record: r})
	}
	return h
}

var (
	idle       = [2]string{"", ""}
	installing = [2]string{string(agent.Installing), ""}
	activating = [2]string{string(agent.Activating), ""}
	trial      = [2]string{string(agent.Trial), ""}
	rolling    = [2]string{string(agent.RollingBack), ""}
	committed  = [2]string{"", string(agent.Committed)}
	rolledBack = [2]string{"", string(agent.RolledBack)}
)

func TestSummarise(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []agent.HistoryEntry
		want Outcome
	}{
		{"once", journal(idle, installing, activating, trial, committed, committed),
			Outcome{Result: agent.Committed, Version: "1.0", Installs: 1, Activations: 1, Results: 1}},
		{"rolled back", journal(idle, installing, activating, trial, rolling, rolledBack),
			Outcome{Result: agent.RolledBack, Version: "1.0", Installs: 1, Activations: 1, Results: 1}},
		{"twice", journal(idle, installing, activating, trial, committed, installing, activating, trial, committed),
			Outcome{Result: agent.Committed, Version: "1.0", Installs: 2, Activations: 2, Results: 2}},
		{"activated twice", journal(idle, installing, activating, trial, activating, trial, committed),
			Outcome{Result: agent.Committed, Version: "1.0", Installs: 1, Activations: 2, Results: 1}},
		{"wrapped", journal(activating, trial, committed),
			Outcome{Result: agent.Committed, Version: "1.0", Installs: 1, Activations: 1, Results: 1, Wrapped: true}},
		{"never sent", journal(idle, idle), Outcome{Version: "1.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarise("", false, tc.h, "j")
			if got != tc.want {
				t.Errorf("Summarise = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	once := Outcome{ID: "n", Result: agent.Committed, Installs: 1, Activations: 1, Results: 1}
	target := func(s headend.TargetState) []headend.Target {
		return []headend.Target{{Campaign: "j", Node: "n", State: s}}
	}
	node := func(job, state string) []headend.Node { return []headend.Node{{ID: "n", Job: job, State: state}} }
	twice := once
	twice.Installs = 2
	failingCommitted := once
	failingCommitted.Fails = true
	rolled := Outcome{ID: "n", Fails: true, Result: agent.RolledBack, Installs: 1, Activations: 1, Results: 1}
	for _, tc := range []struct {
		name    string
		o       Outcome
		targets []headend.Target
		nodes   []headend.Node
		want    Summary
	}{
		{"committed", once, target(headend.TargetCommitted), node("j", "committed"), Summary{Nodes: 1, Committed: 1}},
		{"rolled back", rolled, target(headend.TargetFailed), node("j", "rolled-back"), Summary{Nodes: 1, RolledBack: 1}},
		{"head-end missed the result", once, target(headend.TargetSent), node("j", "trial"), Summary{Nodes: 1, Lost: 1}},
		{"head-end holds another state", once, target(headend.TargetCommitted), node("j", "rolled-back"), Summary{Nodes: 1, Lost: 1}},
		{"head-end holds another job", once, target(headend.TargetCommitted), node("k", "committed"), Summary{Nodes: 1, Lost: 1}},
		{"acted without being sent", once, target(headend.TargetPending), node("", "idle"), Summary{Nodes: 1, Lost: 1}},
		{"done twice", twice, target(headend.TargetCommitted), node("j", "committed"), Summary{Nodes: 1, Committed: 1, Duplicated: 1}},
		{"failing image committed", failingCommitted, target(headend.TargetCommitted), node("j", "committed"), Summary{Nodes: 1, Failed: 1}},
		{"unreachable", Outcome{ID: "n"}, target(headend.TargetUnreachable), node("", "idle"), Summary{Nodes: 1, Unreachable: 1}},
		{"not sent", Outcome{ID: "n"}, target(headend.TargetPending), node("", "idle"), Summary{Nodes: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check("j", []Outcome{tc.o}, tc.targets, tc.nodes)
			got.Problems = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Check = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFailingIsDeterministic(t *testing.T) {
	count := func(b []bool) (k int) {
		for _, v := range b {
			if v {
				k++
			}
		}
		return k
	}
	a, b, c := failing(10000, 0.01, 1), failing(10000, 0.01, 1), failing(10000, 0.01, 2)
	if got := count(a); got != 100 {
		t.Errorf("failing(10000, 1%%) picks %d, want 100", got)
	}
	same, differ := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differ = differ || a[i] != c[i]
	}
	if !same || !differ {
		t.Errorf("failing: same seed same nodes = %v (want true), other seed other nodes = %v (want true)", same, differ)
	}
}

func TestEnded(t *testing.T) {
	sent := []headend.Target{{State: headend.TargetCommitted}, {State: headend.TargetSent}}
	final := []headend.Target{{State: headend.TargetCommitted}, {State: headend.TargetPending}}
	for _, tc := range []struct {
		state headend.CampaignState
		ts    []headend.Target
		want  bool
	}{
		{headend.CampaignRunning, final, false},
		{headend.CampaignDone, final, true},
		{headend.CampaignHalted, sent, false},
		{headend.CampaignHalted, final, true},
		{headend.CampaignCancelled, final, true},
		{headend.CampaignPaused, final, false},
	} {
		if got := Ended(headend.Campaign{State: tc.state}, tc.ts); got != tc.want {
			t.Errorf("Ended(%s, %v) = %v, want %v", tc.state, tc.ts, got, tc.want)
		}
	}
}
