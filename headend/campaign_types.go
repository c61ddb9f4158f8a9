package headend

import "time"

// CampaignState is a campaign's state; stored as text, never rename a value.
type CampaignState string

// The states of a campaign.
const (
	CampaignCreated   CampaignState = "created"
	CampaignRunning   CampaignState = "running"
	CampaignPaused    CampaignState = "paused"
	CampaignHalted    CampaignState = "halted" // failures passed the threshold
	CampaignCancelled CampaignState = "cancelled"
	CampaignDone      CampaignState = "done"
)

// TargetState is the state of one node in a campaign; stored as text.
type TargetState string

// The states of a campaign's node.
const (
	TargetPending     TargetState = "pending"     // its wave has not reached it
	TargetSent        TargetState = "sent"        // its desired document is published
	TargetCommitted   TargetState = "committed"   // it reported result 1
	TargetFailed      TargetState = "failed"      // it reported a failure
	TargetUnreachable TargetState = "unreachable" // silent past the wave's timeout
	TargetCancelled   TargetState = "cancelled"   // the campaign was cancelled first
)

// Final reports whether a target in state s is finished.
func (s TargetState) Final() bool {
	return s == TargetCommitted || s == TargetFailed || s == TargetUnreachable || s == TargetCancelled
}

// Campaign is an update of the nodes a selector picks, in waves.
type Campaign struct {
	ID          string        `json:"id"`
	Package     string        `json:"package"`  // the package file's name in the package directory
	Select      string        `json:"select"`   // e.g. device_type=em300,version=1.0
	Activate    string        `json:"activate"` // now, command or an RFC 3339 time
	Waves       []float64     `json:"waves"`    // cumulative percentages, the last 100
	HaltAbove   float64       `json:"halt_above"`
	MaxInflight int           `json:"max_inflight"`
	WaveTimeout time.Duration `json:"wave_timeout"`
	Stream      bool          `json:"stream,omitempty"` // deliver in-band instead of by URL
	Tailor      bool          `json:"tailor,omitempty"` // send the manifest; answer requests with a package per group
	State       CampaignState `json:"state"`
	Reason      string        `json:"reason,omitempty"`
	Wave        int           `json:"wave"` // the wave in progress, from 0
	// AcceptedFailures are the failures the operator saw when resuming a
	// halted campaign; the threshold counts only those beyond them.
	AcceptedFailures int       `json:"accepted_failures,omitempty"`
	Created          time.Time `json:"created"`
}
