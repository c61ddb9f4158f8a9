package headend

import (
	"bytes"
	"encoding/json"
	"fmt"

	"meterupd/shadow"
)

// MaxReportSize bounds a report document; a larger one is refused unread.
const MaxReportSize = 16 << 10

// Reported is the part of a node's reported state the head-end reads. The
// node's status wire type carries more; unknown fields are ignored, so a
// newer node's reports still decode.
type Reported struct {
	Job      string        `json:"job"`
	State    string        `json:"state"`
	Progress Progress      `json:"progress"`
	Result   shadow.Result `json:"result"`
	Reason   string        `json:"reason"`
	Running  struct {
		Slot    string `json:"slot"`
		Version string `json:"version"`
	} `json:"running"`
	// DeviceType is read when a node reports it; otherwise the head-end
	// learns it from the node's update request.
	DeviceType string `json:"device_type"`
}

// Progress is a download's or install's progress in bytes.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// update is a message on state/<id>/update: a node's report
// ({"seq","reported"}) or a desired change published to the replica
// ({"desired"}).
type update struct {
	Seq      *uint64         `json:"seq"`
	Reported json.RawMessage `json:"reported"`
	Desired  *shadow.Desired `json:"desired"`
}

// parseUpdate decodes a message of state/<id>/update. A report returns its
// seq, its decoded fields and the raw reported document; a desired change
// returns d.
func parseUpdate(b []byte) (u update, rep Reported, err error) {
	if len(b) > MaxReportSize {
		return u, rep, fmt.Errorf("%w: update of %d bytes, at most %d", ErrBadInput, len(b), MaxReportSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&u); err != nil {
		return update{}, rep, fmt.Errorf("%w: update: %v", ErrBadInput, err)
	}
	switch {
	case u.Desired != nil && u.Reported == nil:
		// Checked like a node checks it, so the replica never publishes a
		// document every node would refuse.
		doc, _ := json.Marshal(shadow.Delta{Desired: *u.Desired})
		if _, err := shadow.ParseDelta(doc, 0); err != nil {
			return update{}, rep, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		return u, rep, nil
	case u.Seq != nil && u.Reported != nil:
		if err := json.Unmarshal(u.Reported, &rep); err != nil {
			return update{}, rep, fmt.Errorf("%w: reported: %v", ErrBadInput, err)
		}
		if len(rep.Job) > shadow.MaxJobLen || len(rep.State) > 32 || len(rep.Running.Version) > 64 || len(rep.DeviceType) > 64 {
			return update{}, rep, fmt.Errorf("%w: reported: a field longer than its limit", ErrBadInput)
		}
		return u, rep, nil
	}
	return update{}, rep, fmt.Errorf("%w: update: neither a report (seq, reported) nor a desired change", ErrBadInput)
}
