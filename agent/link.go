package agent

import (
	"fmt"

	"meterupd/manifest"
	"meterupd/validate"
)

// LinkFacts returns the head-end link's persisted facts (zero when none).
func (a *Agent) LinkFacts() LinkFacts {
	if a.rec.Link == nil {
		return LinkFacts{}
	}
	return *a.rec.Link
}

// SetLinkFacts persists the head-end link's facts: the journal first, as
// every state change. Sequence numbers never go back.
func (a *Agent) SetLinkFacts(f LinkFacts) error {
	if a.rec.Link != nil && f.Seq < a.rec.Link.Seq {
		return fmt.Errorf("%w: report sequence %d below the reserved %d", ErrBadRequest, f.Seq, a.rec.Link.Seq)
	}
	r := a.rec.clone()
	r.Link = &f
	return a.commit(r)
}

// Needs verifies a signed manifest (keys, expiry, sequence floor) and
// returns the payloads this node's install would take from its package:
// the items of the cheapest route that validation lets through. A head-end
// link fetches only these (a tailored package, or Range requests into the
// full one). Nothing changes.
func (a *Agent) Needs(envelope []byte) ([]string, error) {
	keys, err := a.Keyring()
	if err != nil {
		return nil, err
	}
	m, _, err := manifest.Verify(envelope, keys)
	if err != nil {
		return nil, &PackageError{Err: err}
	}
	if now := a.clk.Now(); m.Expires != 0 && now.Unix() >= m.Expires {
		return nil, &PackageError{Err: fmt.Errorf("%w: at %d", manifest.ErrExpired, m.Expires)}
	}
	if err := manifest.CheckSequence(m, a.rec.Floor); err != nil {
		return nil, &PackageError{Err: err}
	}
	if len(m.Items) == 0 {
		return nil, nil
	}
	facts, _, err := a.Facts()
	if err != nil {
		return nil, err
	}
	plan, err := m.Select(facts.Node())
	if err != nil {
		return nil, &PackageError{Err: err}
	}
	if err := downgradeOnly(m, facts.Node()); err != nil {
		return nil, &PackageError{Err: err}
	}
	rep, err := validate.Plan(plan, facts)
	if err != nil {
		return nil, &PackageError{Err: err, Checks: rep.Results}
	}
	var names []string
	for _, s := range rep.Install {
		names = append(names, s.Item.Payload)
	}
	return names, nil
}
