package headend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"meterupd/shadow"
)

// sqlStore is the Store on database/sql: SQLite (one process) or
// PostgreSQL (several instances). The statements are the same; only the
// placeholders and two column types differ.
type sqlStore struct {
	db       *sql.DB
	postgres bool
}

var _ Store = (*sqlStore)(nil)

// Open opens the store at dsn: a postgres:// or postgresql:// URL, or else
// the path of an SQLite file (created when missing). now is the clock that
// dates a new store's epoch.
func Open(ctx context.Context, dsn string, now func() time.Time) (Store, error) {
	s := &sqlStore{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
	} else {
		// WAL and a busy timeout: the HTTP handlers read while the replica
		// writes. One connection: SQLite has one writer anyway.
		// Transactions take the write lock when they begin (_txlock=
		// immediate), waiting the busy timeout for it: a deferred one that
		// reads first and writes second fails at once with "database is
		// locked" when another process (`headend serve`, while an
		// operator's command opens the file) wrote in between.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("headend: open store: %w", err)
	}
	if err := s.init(ctx, now()); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqlStore) Close() error { return s.db.Close() }

// q rewrites ? placeholders as $n for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS nodes (
		id TEXT PRIMARY KEY, device_type TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '',
		state TEXT NOT NULL DEFAULT '', job TEXT NOT NULL DEFAULT '', result BIGINT NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL DEFAULT -1, last_report BIGINT NOT NULL DEFAULT 0,
		reported TEXT NOT NULL DEFAULT '', link TEXT NOT NULL DEFAULT '', link_at BIGINT NOT NULL DEFAULT 0)`,
	`CREATE TABLE IF NOT EXISTS desired (node TEXT PRIMARY KEY, version BIGINT NOT NULL, doc TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS reports (node TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL,
		doc TEXT NOT NULL, PRIMARY KEY (node, seq))`,
	`CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL,
		wave BIGINT NOT NULL, created BIGINT NOT NULL, doc TEXT NOT NULL, accepted BIGINT NOT NULL DEFAULT 0)`,
	`CREATE TABLE IF NOT EXISTS targets (campaign TEXT NOT NULL, node TEXT NOT NULL, wave BIGINT NOT NULL,
		state TEXT NOT NULL, result BIGINT NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (campaign, node))`,
	`CREATE TABLE IF NOT EXISTS packages (key TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL,
		size BIGINT NOT NULL)`,
}

func (s *sqlStore) init(ctx context.Context, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("headend: store schema: %w", err)
	}
	defer tx.Rollback()
	if s.postgres {
		// Two instances starting together must not race on CREATE TABLE.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7426)`); err != nil {
			return fmt.Errorf("headend: store schema: %w", err)
		}
	}
	for _, st := range schema {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("headend: store schema: %w", err)
		}
	}
	// The epoch is dated once, when the store is new: a rebuilt store
	// starts a higher epoch than any it replaces (clocks move forward).
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT (key) DO NOTHING`),
		strconv.FormatInt(now.Unix(), 10))
	if err != nil {
		return fmt.Errorf("headend: store epoch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("headend: store schema: %w", err)
	}
	return nil
}

func (s *sqlStore) Epoch(ctx context.Context) (uint64, error) {
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'epoch'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("headend: epoch: %w", err)
	}
	e, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("headend: epoch %q: %w", v, err)
	}
	return e, nil
}

func (s *sqlStore) SetDesired(ctx context.Context, node string, d shadow.Desired) (shadow.Delta, error) {
	if err := checkNodeID(node); err != nil {
		return shadow.Delta{}, err
	}
	epoch, err := s.Epoch(ctx)
	if err != nil {
		return shadow.Delta{}, err
	}
	doc, err := json.Marshal(d)
	if err != nil {
		return shadow.Delta{}, fmt.Errorf("headend: desired: %w", err)
	}
	// One statement: two instances changing the same node get two
	// different versions, never the same one twice.
	var v int64
	err = s.db.QueryRowContext(ctx, s.q(`INSERT INTO desired (node, version, doc) VALUES (?, 1, ?)
		ON CONFLICT (node) DO UPDATE SET version = desired.version + 1, doc = excluded.doc
		RETURNING version`), node, string(doc)).Scan(&v)
	if err != nil {
		return shadow.Delta{}, fmt.Errorf("headend: desired of %s: %w", node, err)
	}
	return shadow.Delta{Epoch: epoch, Version: uint64(v), Desired: d}, nil
}

func (s *sqlStore) Desired(ctx context.Context, node string) (shadow.Delta, error) {
	epoch, err := s.Epoch(ctx)
	if err != nil {
		return shadow.Delta{}, err
	}
	var v int64
	var doc string
	err = s.db.QueryRowContext(ctx, s.q(`SELECT version, doc FROM desired WHERE node = ?`), node).Scan(&v, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return shadow.Delta{}, fmt.Errorf("%w: desired state of %s", ErrNotFound, node)
	}
	if err != nil {
		return shadow.Delta{}, fmt.Errorf("headend: desired of %s: %w", node, err)
	}
	d := shadow.Delta{Epoch: epoch, Version: uint64(v)}
	if err := json.Unmarshal([]byte(doc), &d.Desired); err != nil {
		return shadow.Delta{}, fmt.Errorf("headend: desired of %s: %w", node, err)
	}
	return d, nil
}

func (s *sqlStore) RecordReport(ctx context.Context, node string, seq uint64, rep Reported, raw json.RawMessage, at time.Time) (bool, error) {
	if err := checkNodeID(node); err != nil {
		return false, err
	}
	if seq > math.MaxInt64 {
		return false, fmt.Errorf("%w: seq %d out of range", ErrBadInput, seq)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("headend: report: %w", err)
	}
	defer tx.Rollback()
	// The WHERE makes the seq check and the write one step: a stale or
	// replayed report updates no row and returns none.
	var id string
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO nodes (id, device_type, version, state, job, result, reason, seq, last_report, reported)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			device_type = CASE WHEN excluded.device_type <> '' THEN excluded.device_type ELSE nodes.device_type END,
			version = excluded.version, state = excluded.state, job = excluded.job, result = excluded.result,
			reason = excluded.reason, seq = excluded.seq, last_report = excluded.last_report, reported = excluded.reported
		WHERE nodes.seq < excluded.seq
		RETURNING id`),
		node, rep.DeviceType, rep.Running.Version, rep.State, rep.Job, int64(rep.Result), rep.Reason,
		int64(seq), at.UnixMilli(), string(raw)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("headend: report of %s: %w", node, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO reports (node, seq, at, doc) VALUES (?, ?, ?, ?)`),
		node, int64(seq), at.UnixMilli(), string(raw)); err != nil {
		return false, fmt.Errorf("headend: report of %s: %w", node, err)
	}
	// Bounded history: the oldest beyond HistoryLen go.
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM reports WHERE node = ? AND seq <= ?`),
		node, int64(seq)-HistoryLen); err != nil {
		return false, fmt.Errorf("headend: report history of %s: %w", node, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM reports WHERE node = ? AND seq NOT IN
		(SELECT seq FROM reports WHERE node = ? ORDER BY seq DESC LIMIT ?)`), node, node, HistoryLen); err != nil {
		return false, fmt.Errorf("headend: report history of %s: %w", node, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("headend: report of %s: %w", node, err)
	}
	return true, nil
}

func (s *sqlStore) ResetSeq(ctx context.Context, node string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("headend: reset seq of %s: %w", node, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE nodes SET seq = -1 WHERE id = ?`), node)
	if err != nil {
		return fmt.Errorf("headend: reset seq of %s: %w", node, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: node %s", ErrNotFound, node)
	}
	// The history is of the old counter: it goes with it.
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM reports WHERE node = ?`), node); err != nil {
		return fmt.Errorf("headend: reset seq of %s: %w", node, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("headend: reset seq of %s: %w", node, err)
	}
	return nil
}

func (s *sqlStore) SetLink(ctx context.Context, node string, online bool, at time.Time) error {
	if err := checkNodeID(node); err != nil {
		return err
	}
	link := LinkOffline
	if online {
		link = LinkOnline
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO nodes (id, link, link_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET link = excluded.link, link_at = excluded.link_at`), node, link, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("headend: link of %s: %w", node, err)
	}
	return nil
}

func (s *sqlStore) SetDeviceType(ctx context.Context, node, deviceType string) error {
	if err := checkNodeID(node); err != nil {
		return err
	}
	if deviceType == "" || len(deviceType) > 64 {
		return fmt.Errorf("%w: device type %q", ErrBadInput, deviceType)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO nodes (id, device_type) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET device_type = excluded.device_type`), node, deviceType)
	if err != nil {
		return fmt.Errorf("headend: device type of %s: %w", node, err)
	}
	return nil
}

const nodeCols = `id, device_type, version, state, job, result, reason, seq, last_report, reported, link, link_at`

func scanNode(sc interface{ Scan(...any) error }) (Node, error) {
	var n Node
	var result, seq, last, linkAt int64
	var rep string
	if err := sc.Scan(&n.ID, &n.DeviceType, &n.Version, &n.State, &n.Job, &result, &n.Reason, &seq, &last, &rep, &n.Link, &linkAt); err != nil {
		return Node{}, err
	}
	n.Result = shadow.Result(result)
	if seq >= 0 {
		n.Seq = uint64(seq)
	}
	if last > 0 {
		n.LastReport = time.UnixMilli(last).UTC()
	}
	if rep != "" {
		n.Reported = json.RawMessage(rep)
	}
	if linkAt > 0 {
		n.LinkAt = time.UnixMilli(linkAt).UTC()
	}
	return n, nil
}

func (s *sqlStore) Node(ctx context.Context, id string) (Node, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, s.q(`SELECT `+nodeCols+` FROM nodes WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Node{}, fmt.Errorf("%w: node %s", ErrNotFound, id)
	}
	if err != nil {
		return Node{}, fmt.Errorf("headend: node %s: %w", id, err)
	}
	return n, nil
}

func (s *sqlStore) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("headend: nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("headend: nodes: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("headend: nodes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) History(ctx context.Context, node string) ([]Report, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, at, doc FROM reports WHERE node = ? ORDER BY seq`), node)
	if err != nil {
		return nil, fmt.Errorf("headend: history of %s: %w", node, err)
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var seq, at int64
		var doc string
		if err := rows.Scan(&seq, &at, &doc); err != nil {
			return nil, fmt.Errorf("headend: history of %s: %w", node, err)
		}
		out = append(out, Report{Seq: uint64(seq), At: time.UnixMilli(at).UTC(), Reported: json.RawMessage(doc)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("headend: history of %s: %w", node, err)
	}
	return out, nil
}

func (s *sqlStore) CreateCampaign(ctx context.Context, c Campaign, targets []Target) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("headend: campaign: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("headend: campaign: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO campaigns (id, state, reason, wave, created, doc) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`), c.ID, string(c.State), c.Reason, c.Wave, c.Created.UnixMilli(), string(doc))
	if err != nil {
		return fmt.Errorf("headend: campaign %s: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: campaign %s exists", ErrConflict, c.ID)
	}
	st, err := tx.PrepareContext(ctx, s.q(`INSERT INTO targets (campaign, node, wave, state, result, since) VALUES (?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return fmt.Errorf("headend: campaign %s: %w", c.ID, err)
	}
	defer st.Close()
	for _, t := range targets {
		if _, err := st.ExecContext(ctx, c.ID, t.Node, t.Wave, string(t.State), int64(t.Result), t.Since.UnixMilli()); err != nil {
			return fmt.Errorf("headend: campaign %s target %s: %w", c.ID, t.Node, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("headend: campaign %s: %w", c.ID, err)
	}
	return nil
}

func scanCampaign(sc interface{ Scan(...any) error }) (Campaign, error) {
	var c Campaign
	var id, state, reason, doc string
	var wave, created, accepted int64
	if err := sc.Scan(&id, &state, &reason, &wave, &created, &doc, &accepted); err != nil {
		return Campaign{}, err
	}
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return Campaign{}, err
	}
	// The columns are the truth for what changes; doc holds the spec.
	c.ID, c.State, c.Reason, c.Wave, c.AcceptedFailures = id, CampaignState(state), reason, int(wave), int(accepted)
	c.Created = time.UnixMilli(created).UTC()
	return c, nil
}

const campaignCols = `id, state, reason, wave, created, doc, accepted`

func (s *sqlStore) Campaign(ctx context.Context, id string) (Campaign, error) {
	c, err := scanCampaign(s.db.QueryRowContext(ctx, s.q(`SELECT `+campaignCols+` FROM campaigns WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Campaign{}, fmt.Errorf("%w: campaign %s", ErrNotFound, id)
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("headend: campaign %s: %w", id, err)
	}
	return c, nil
}

func (s *sqlStore) Campaigns(ctx context.Context) ([]Campaign, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+campaignCols+` FROM campaigns ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("headend: campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("headend: campaigns: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("headend: campaigns: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetCampaignState(ctx context.Context, id string, state CampaignState, reason string, from ...CampaignState) error {
	if len(from) == 0 {
		return fmt.Errorf("%w: no state to move campaign %s from", ErrBadInput, id)
	}
	args := []any{string(state), reason, id}
	ph := make([]string, len(from))
	for i, f := range from {
		ph[i] = "?"
		args = append(args, string(f))
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE campaigns SET state = ?, reason = ? WHERE id = ? AND state IN (`+strings.Join(ph, ", ")+`)`), args...)
	if err != nil {
		return fmt.Errorf("headend: campaign %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Campaign(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: campaign %s is not %v", ErrConflict, id, from)
	}
	return nil
}

func (s *sqlStore) ResumeCampaign(ctx context.Context, id string, accepted int) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE campaigns SET state = ?, reason = '', accepted = ? WHERE id = ? AND state IN (?, ?)`),
		string(CampaignRunning), accepted, id, string(CampaignPaused), string(CampaignHalted))
	if err != nil {
		return fmt.Errorf("headend: campaign %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Campaign(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: campaign %s is neither paused nor halted", ErrConflict, id)
	}
	return nil
}

func (s *sqlStore) SetCampaignWave(ctx context.Context, id string, from, to int) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE campaigns SET wave = ? WHERE id = ? AND wave = ?`), to, id, from)
	if err != nil {
		return fmt.Errorf("headend: campaign %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: campaign %s is not in wave %d", ErrConflict, id, from)
	}
	return nil
}

func (s *sqlStore) Targets(ctx context.Context, campaign string) ([]Target, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT node, wave, state, result, since FROM targets WHERE campaign = ? ORDER BY wave, node`), campaign)
	if err != nil {
		return nil, fmt.Errorf("headend: targets of %s: %w", campaign, err)
	}
	defer rows.Close()
	var out []Target
	for rows.Next() {
		t := Target{Campaign: campaign}
		var wave, result, since int64
		var state string
		if err := rows.Scan(&t.Node, &wave, &state, &result, &since); err != nil {
			return nil, fmt.Errorf("headend: targets of %s: %w", campaign, err)
		}
		t.Wave, t.State, t.Result, t.Since = int(wave), TargetState(state), shadow.Result(result), time.UnixMilli(since).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("headend: targets of %s: %w", campaign, err)
	}
	return out, nil
}

func (s *sqlStore) MoveTarget(ctx context.Context, campaign, node string, from, to TargetState, result shadow.Result, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE targets SET state = ?, result = ?, since = ? WHERE campaign = ? AND node = ? AND state = ?`),
		string(to), int64(result), at.UnixMilli(), campaign, node, string(from))
	if err != nil {
		return false, fmt.Errorf("headend: target %s of %s: %w", node, campaign, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("headend: target %s of %s: %w", node, campaign, err)
	}
	return n == 1, nil
}

func (s *sqlStore) PutPackage(ctx context.Context, p Package) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO packages (key, name, sha256, size) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET name = excluded.name, sha256 = excluded.sha256, size = excluded.size`),
		p.Key, p.Name, p.SHA256, p.Size)
	if err != nil {
		return fmt.Errorf("headend: package %s: %w", p.Key, err)
	}
	return nil
}

func (s *sqlStore) Package(ctx context.Context, key string) (Package, error) {
	p := Package{Key: key}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name, sha256, size FROM packages WHERE key = ?`), key).Scan(&p.Name, &p.SHA256, &p.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return Package{}, fmt.Errorf("%w: package %s", ErrNotFound, key)
	}
	if err != nil {
		return Package{}, fmt.Errorf("headend: package %s: %w", key, err)
	}
	return p, nil
}

// checkNodeID checks a node id as docs/mqtt.md defines it: 1 to 64
// characters of [A-Za-z0-9._-].
func checkNodeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: node id of %d characters", ErrBadInput, len(id))
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%w: node id %q", ErrBadInput, id)
		}
	}
	return nil
}
