package shadow

// Gate is what a node persists (in its journal) so that it acts on each
// desired document at most once: the replica's epoch and the highest
// document version it acted on in that epoch.
//
// The rule (docs/mqtt.md): a document of a higher epoch is new (the
// replica's store was rebuilt and counts again from its start, so a
// replica reset cannot freeze a node); in the same epoch only a higher
// version is new; anything else is a duplicate, a replay or stale, and is
// ignored with a report saying so. A replayed old package in a new epoch
// is still refused by the package's signed sequence number.
type Gate struct {
	Epoch   uint64 `json:"epoch" cbor:"epoch"`
	Version uint64 `json:"version" cbor:"version"`
}

// Verdict says what a node does with a desired document.
type Verdict int

const (
	Act       Verdict = iota // new: act on it
	Duplicate                // the version acted on already
	Stale                    // an older version, or an older epoch
)

func (v Verdict) String() string {
	switch v {
	case Act:
		return "act"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// Check tells whether d is new against the gate g.
func (g Gate) Check(d Delta) Verdict {
	switch {
	case d.Epoch > g.Epoch:
		return Act
	case d.Epoch < g.Epoch:
		return Stale
	case d.Version > g.Version:
		return Act
	case d.Version == g.Version:
		return Duplicate
	}
	return Stale
}

// After returns the gate once d has been acted on.
func (g Gate) After(d Delta) Gate { return Gate{Epoch: d.Epoch, Version: d.Version} }
