package headend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"meterupd/manifest"
	"meterupd/shadow"
)

// Topics of docs/mqtt.md.
func topicDelta(id string) string    { return "state/" + id + "/update/delta" }
func topicAccepted(id string) string { return "state/" + id + "/update/accepted" }
func topicData(id string) string     { return "state/" + id + "/stream/data" }

// nodeOf returns <id> of state/<id>/<suffix>, or "" when topic is not one.
func nodeOf(topic, suffix string) string {
	rest, ok := strings.CutPrefix(topic, "state/")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "/"+suffix)
	if !ok || checkNodeID(id) != nil {
		return ""
	}
	return id
}

// Replica is the device state replica: it records desired and reported
// state per node in the store, publishes the desired document retained on
// state/<id>/update/delta, records reports of state/<id>/update by seq and
// confirms them on state/<id>/update/accepted.
type Replica struct {
	Store Store
	Link  Link
	Log   *slog.Logger
	Now   func() time.Time
	// Shared, when set, subscribes with $share/<Shared>/… so that several
	// instances on one broker each get a share of the fleet's messages.
	Shared string
	// OnReport, when set, is called after a report is recorded.
	OnReport func(ctx context.Context, node string, rep Reported)
	// OnRequest, when set, answers a node's update request for job.
	OnRequest func(ctx context.Context, node, job string, req manifest.Request)
}

func (r *Replica) filter(f string) string {
	if r.Shared != "" {
		return "$share/" + r.Shared + "/" + f
	}
	return f
}

// Start subscribes to the nodes' reports and requests.
func (r *Replica) Start(ctx context.Context) error {
	if err := r.Link.Subscribe(r.filter("state/+/update"), func(topic string, b []byte) {
		if id := nodeOf(topic, "update"); id != "" {
			r.handleUpdate(ctx, id, b)
		}
	}); err != nil {
		return err
	}
	if err := r.Link.Subscribe(r.filter("state/+/link"), func(topic string, b []byte) {
		if id := nodeOf(topic, "link"); id != "" {
			r.handleLink(ctx, id, b)
		}
	}); err != nil {
		return err
	}
	return r.Link.Subscribe(r.filter("state/+/request"), func(topic string, b []byte) {
		if id := nodeOf(topic, "request"); id != "" {
			r.handleRequest(ctx, id, b)
		}
	})
}

// handleLink records a node's {"online": bool} (retained; its last will
// says false).
func (r *Replica) handleLink(ctx context.Context, node string, b []byte) {
	var msg struct {
		Online *bool `json:"online"`
	}
	if len(b) > 1024 || json.Unmarshal(b, &msg) != nil || msg.Online == nil {
		r.Log.Warn("link message refused", slog.String("node", node), slog.Int("bytes", len(b)))
		return
	}
	if err := r.Store.SetLink(ctx, node, *msg.Online, r.Now()); err != nil {
		r.Log.Warn("link not recorded", slog.String("node", node), slog.Any("err", err))
	}
}

// SetDesired records what is wanted of node and publishes it.
func (r *Replica) SetDesired(ctx context.Context, node string, d shadow.Desired) (shadow.Delta, error) {
	delta, err := r.Store.SetDesired(ctx, node, d)
	if err != nil {
		return shadow.Delta{}, err
	}
	return delta, r.publishDelta(ctx, node, delta)
}

func (r *Replica) publishDelta(ctx context.Context, node string, delta shadow.Delta) error {
	b, err := json.Marshal(delta)
	if err != nil {
		return fmt.Errorf("headend: desired of %s: %w", node, err)
	}
	// What we publish, a node must take: checked by the node's own parser.
	if _, err := shadow.ParseDelta(b, 0); err != nil {
		return fmt.Errorf("%w: desired of %s: %v", ErrBadInput, node, err)
	}
	return r.Link.Publish(ctx, topicDelta(node), true, b)
}

// Republish publishes every node's desired document again (retained): a
// broker that lost its retained messages (the embedded one restarted, a
// mosquitto without persistence) has them back. A node ignores the copies
// as duplicates.
func (r *Replica) Republish(ctx context.Context) error {
	nodes, err := r.Store.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		d, err := r.Store.Desired(ctx, n.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := r.publishDelta(ctx, n.ID, d); err != nil {
			return err
		}
	}
	return nil
}

func (r *Replica) handleUpdate(ctx context.Context, node string, b []byte) {
	u, rep, err := parseUpdate(b)
	if err != nil {
		r.Log.Warn("update refused", slog.String("node", node), slog.Any("err", err))
		return
	}
	if u.Desired != nil {
		if _, err := r.SetDesired(ctx, node, *u.Desired); err != nil {
			r.Log.Error("desired change not published", slog.String("node", node), slog.Any("err", err))
		}
		return
	}
	recorded, err := r.Store.RecordReport(ctx, node, *u.Seq, rep, u.Reported, r.Now())
	if err != nil {
		// Not confirmed: the node sends it again.
		r.Log.Error("report not recorded", slog.String("node", node), slog.Any("err", err))
		return
	}
	// A report at or below the last recorded seq is confirmed too: the
	// replica holds it or a newer one, and the node must stop resending.
	ack, _ := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{*u.Seq})
	if err := r.Link.Publish(ctx, topicAccepted(node), false, ack); err != nil {
		r.Log.Warn("accepted not published", slog.String("node", node), slog.Any("err", err))
	}
	if !recorded {
		// Resends land here too; a node whose seq started again lands
		// here for good (headend node ID --reset-seq).
		r.Log.Debug("report not above the last recorded seq; confirmed, not recorded", slog.String("node", node), slog.Uint64("seq", *u.Seq))
	}
	if recorded {
		r.Log.Debug("report recorded", slog.String("node", node), slog.Uint64("seq", *u.Seq), slog.String("state", rep.State))
	}
	if recorded && r.OnReport != nil {
		r.OnReport(ctx, node, rep)
	}
}

// MaxRequestSize bounds an update request.
const MaxRequestSize = 8 << 10

func (r *Replica) handleRequest(ctx context.Context, node string, b []byte) {
	if len(b) > MaxRequestSize {
		r.Log.Warn("request refused", slog.String("node", node), slog.Int("bytes", len(b)))
		return
	}
	// {"job": J, "request": manifest.Request} (docs/mqtt.md, the request
	// flow).
	var msg struct {
		Job     string            `json:"job"`
		Request *manifest.Request `json:"request"`
	}
	if err := json.Unmarshal(b, &msg); err != nil || msg.Request == nil || len(msg.Job) > shadow.MaxJobLen {
		r.Log.Warn("request refused", slog.String("node", node), slog.Any("err", err))
		return
	}
	req := *msg.Request
	if req.DeviceType != "" {
		if err := r.Store.SetDeviceType(ctx, node, req.DeviceType); err != nil {
			r.Log.Warn("device type not recorded", slog.String("node", node), slog.Any("err", err))
		}
	}
	if r.OnRequest != nil {
		r.OnRequest(ctx, node, msg.Job, req)
	}
}
