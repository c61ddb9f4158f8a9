package headend

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"meterupd/shadow"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("headend: not found")
	ErrConflict = errors.New("headend: changed by someone else")
	ErrBadInput = errors.New("headend: bad input")
)

// Node is what the head-end knows of one node: the last report it
// recorded, summarised into the columns an operator sorts by.
type Node struct {
	ID         string          `json:"id"`
	DeviceType string          `json:"device_type,omitempty"`
	Version    string          `json:"version,omitempty"` // running version
	State      string          `json:"state,omitempty"`
	Job        string          `json:"job,omitempty"`
	Result     shadow.Result   `json:"result"`
	Reason     string          `json:"reason,omitempty"`
	Seq        uint64          `json:"seq"`                  // of the last recorded report
	LastReport time.Time       `json:"last_report,omitzero"` // when it was recorded
	Reported   json.RawMessage `json:"reported,omitempty"`   // the last report's document
	Link       string          `json:"link,omitempty"`       // LinkOnline, LinkOffline, or "" (never said)
	LinkAt     time.Time       `json:"link_at,omitzero"`     // when the head-end learnt it
}

// The link states a node announces on state/<id>/link.
const (
	LinkOnline  = "online"
	LinkOffline = "offline" // its last will, or a clean stop
)

// Report is one recorded report of a node's history.
type Report struct {
	Seq      uint64          `json:"seq"`
	At       time.Time       `json:"at"`
	Reported json.RawMessage `json:"reported"`
}

// Package is a package file the head-end serves, whole or repackaged for a
// version group.
type Package struct {
	Key    string `json:"key"`    // the cache key: source digest + group
	Name   string `json:"name"`   // file name under the package directory
	SHA256 string `json:"sha256"` // of the file
	Size   int64  `json:"size"`
}

// Target is one node of a campaign.
type Target struct {
	Campaign string        `json:"campaign"`
	Node     string        `json:"node"`
	Wave     int           `json:"wave"`
	State    TargetState   `json:"state"`
	Result   shadow.Result `json:"result"`
	Since    time.Time     `json:"since"` // when it entered State
}

// Store keeps the replica's and the campaigns' state. Every method is safe
// for concurrent use, also by several processes sharing one database
// (PostgreSQL): state changes that must happen once are single
// conditional statements.
type Store interface {
	// Epoch is the replica's epoch, fixed when the store was created.
	Epoch(ctx context.Context) (uint64, error)

	// SetDesired records the desired state of node and returns the new
	// document, its version one above the last.
	SetDesired(ctx context.Context, node string, d shadow.Desired) (shadow.Delta, error)
	// Desired returns the node's desired document (ErrNotFound: none).
	Desired(ctx context.Context, node string) (shadow.Delta, error)

	// RecordReport records report seq of node if it is above the last
	// recorded one and reports whether it did; the history keeps the last
	// HistoryLen reports per node.
	RecordReport(ctx context.Context, node string, seq uint64, rep Reported, raw json.RawMessage, at time.Time) (bool, error)
	// ResetSeq forgets the last recorded seq of node, so its next report
	// is recorded whatever its seq: for a node replaced under the same id,
	// or one whose journal (and report counter) started again. Its report
	// history, numbered by the old counter, is deleted with it.
	ResetSeq(ctx context.Context, node string) error
	// SetLink records what a node said on state/<id>/link.
	SetLink(ctx context.Context, node string, online bool, at time.Time) error
	// SetDeviceType records a node's device type (from its update request
	// or an operator) when its reports do not carry one.
	SetDeviceType(ctx context.Context, node, deviceType string) error
	Node(ctx context.Context, id string) (Node, error)
	Nodes(ctx context.Context) ([]Node, error)
	History(ctx context.Context, node string) ([]Report, error)

	CreateCampaign(ctx context.Context, c Campaign, targets []Target) error
	Campaign(ctx context.Context, id string) (Campaign, error)
	Campaigns(ctx context.Context) ([]Campaign, error)
	// SetCampaignState moves campaign id from one of the states from to
	// state; ErrConflict when it was in none of them.
	SetCampaignState(ctx context.Context, id string, state CampaignState, reason string, from ...CampaignState) error
	// ResumeCampaign moves a paused or halted campaign to running, with
	// accepted failures the operator has seen (the halt threshold counts
	// only failures beyond them).
	ResumeCampaign(ctx context.Context, id string, accepted int) error
	// SetCampaignWave moves campaign id from wave from to wave to.
	SetCampaignWave(ctx context.Context, id string, from, to int) error
	Targets(ctx context.Context, campaign string) ([]Target, error)
	// MoveTarget moves a target from state from to state to (with its
	// result) and reports whether it did: false when it was not in from.
	MoveTarget(ctx context.Context, campaign, node string, from, to TargetState, result shadow.Result, at time.Time) (bool, error)

	PutPackage(ctx context.Context, p Package) error
	Package(ctx context.Context, key string) (Package, error)

	Close() error
}

// HistoryLen is how many reports per node the store keeps.
const HistoryLen = 200
