package headend

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/headend/internal/servicetest"
	"meterupd/shadow"
)

var t0 = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

// stores runs f against both stores: SQLite in a temp dir and a real
// PostgreSQL started for the test.
func stores(t *testing.T, f func(t *testing.T, open func(now time.Time) Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "headend.db")
		f(t, func(now time.Time) Store { return openStore(t, path, now) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := servicetest.Postgres(t)
		f(t, func(now time.Time) Store { return openStore(t, dsn, now) })
	})
}

func openStore(t *testing.T, dsn string, now time.Time) Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, func() time.Time { return now })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func report(seq uint64, state, version string, result shadow.Result) (Reported, json.RawMessage) {
	var r Reported
	r.State, r.Running.Version, r.Result, r.Job = state, version, result, "j1"
	raw, _ := json.Marshal(r)
	return r, raw
}

func TestStore(t *testing.T) {
	stores(t, func(t *testing.T, open func(time.Time) Store) {
		ctx := context.Background()
		s := open(t0)

		t.Run("epoch fixed at creation", func(t *testing.T) {
			got, err := s.Epoch(ctx)
			if err != nil || got != uint64(t0.Unix()) {
				t.Fatalf("Epoch() = %d, %v, want %d", got, err, t0.Unix())
			}
			again := open(t0.Add(time.Hour)) // reopened later: same store, same epoch
			if got, _ := again.Epoch(ctx); got != uint64(t0.Unix()) {
				t.Fatalf("Epoch() after reopening = %d, want %d", got, t0.Unix())
			}
		})

		t.Run("desired versions rise", func(t *testing.T) {
			if _, err := s.Desired(ctx, "n1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Desired(new node) = %v, want ErrNotFound", err)
			}
			for want := uint64(1); want <= 3; want++ {
				d, err := s.SetDesired(ctx, "n1", shadow.Desired{Job: "j", Cancel: true})
				if err != nil || d.Version != want || d.Epoch != uint64(t0.Unix()) {
					t.Fatalf("SetDesired = %+v, %v, want version %d", d, err, want)
				}
			}
			got, err := s.Desired(ctx, "n1")
			if err != nil || got.Version != 3 || got.Desired.Job != "j" || !got.Desired.Cancel {
				t.Fatalf("Desired = %+v, %v", got, err)
			}
			if _, err := s.SetDesired(ctx, "bad/id", shadow.Desired{}); !errors.Is(err, ErrBadInput) {
				t.Fatalf("SetDesired(bad id) = %v, want ErrBadInput", err)
			}
		})

		t.Run("reports by seq", func(t *testing.T) {
			for _, tt := range []struct {
				seq  uint64
				want bool
			}{{1, true}, {2, true}, {2, false}, {1, false}, {5, true}, {4, false}} {
				r, raw := report(tt.seq, "downloading", "1.0", 0)
				got, err := s.RecordReport(ctx, "n2", tt.seq, r, raw, t0)
				if err != nil || got != tt.want {
					t.Fatalf("RecordReport(seq %d) = %v, %v, want %v", tt.seq, got, err, tt.want)
				}
			}
			n, err := s.Node(ctx, "n2")
			if err != nil || n.Seq != 5 || n.State != "downloading" || n.Version != "1.0" {
				t.Fatalf("Node = %+v, %v", n, err)
			}
			h, _ := s.History(ctx, "n2")
			var seqs []uint64
			for _, r := range h {
				seqs = append(seqs, r.Seq)
			}
			if len(seqs) != 3 || seqs[0] != 1 || seqs[2] != 5 {
				t.Fatalf("History seqs = %v, want [1 2 5]", seqs)
			}
			// A node whose counter started again: forgotten, then recorded.
			if err := s.ResetSeq(ctx, "n2"); err != nil {
				t.Fatal(err)
			}
			r, raw := report(1, "idle", "1.1", 0)
			if ok, err := s.RecordReport(ctx, "n2", 1, r, raw, t0); !ok || err != nil {
				t.Fatalf("RecordReport(seq 1 after ResetSeq) = %v, %v, want recorded", ok, err)
			}
			if err := s.ResetSeq(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("ResetSeq(unknown) = %v, want ErrNotFound", err)
			}
		})

		t.Run("history bounded", func(t *testing.T) {
			for seq := uint64(1); seq <= HistoryLen+20; seq++ {
				r, raw := report(seq, "idle", "1.0", 0)
				if _, err := s.RecordReport(ctx, "n3", seq, r, raw, t0); err != nil {
					t.Fatal(err)
				}
			}
			h, _ := s.History(ctx, "n3")
			if len(h) != HistoryLen || h[0].Seq != 21 {
				t.Fatalf("History = %d reports from seq %d, want %d from 21", len(h), h[0].Seq, HistoryLen)
			}
		})

		t.Run("device type kept", func(t *testing.T) {
			if err := s.SetDeviceType(ctx, "n4", "em300"); err != nil {
				t.Fatal(err)
			}
			r, raw := report(0, "idle", "1.0", 0) // seq 0 is a valid first report
			if ok, err := s.RecordReport(ctx, "n4", 0, r, raw, t0); !ok || err != nil {
				t.Fatalf("RecordReport(seq 0) = %v, %v", ok, err)
			}
			n, _ := s.Node(ctx, "n4")
			if n.DeviceType != "em300" || n.Version != "1.0" {
				t.Fatalf("Node = %+v, want em300 on 1.0", n)
			}
			if _, err := s.Node(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Node(unknown) = %v, want ErrNotFound", err)
			}
		})

		t.Run("campaign moves once", func(t *testing.T) {
			c := Campaign{ID: "c1", Package: "p.pkg", Waves: []float64{50, 100}, State: CampaignCreated, Created: t0}
			tg := []Target{{Node: "n1", Wave: 0, State: TargetPending}, {Node: "n2", Wave: 1, State: TargetPending}}
			if err := s.CreateCampaign(ctx, c, tg); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateCampaign(ctx, c, tg); !errors.Is(err, ErrConflict) {
				t.Fatalf("CreateCampaign twice = %v, want ErrConflict", err)
			}
			if err := s.SetCampaignState(ctx, "c1", CampaignRunning, "", CampaignCreated); err != nil {
				t.Fatal(err)
			}
			if err := s.SetCampaignState(ctx, "c1", CampaignRunning, "", CampaignCreated); !errors.Is(err, ErrConflict) {
				t.Fatalf("second start = %v, want ErrConflict", err)
			}
			if err := s.SetCampaignState(ctx, "c9", CampaignRunning, "", CampaignCreated); !errors.Is(err, ErrNotFound) {
				t.Fatalf("start of unknown = %v, want ErrNotFound", err)
			}
			if ok, _ := s.MoveTarget(ctx, "c1", "n1", TargetPending, TargetSent, 0, t0); !ok {
				t.Fatal("first move refused")
			}
			if ok, _ := s.MoveTarget(ctx, "c1", "n1", TargetPending, TargetSent, 0, t0); ok {
				t.Fatal("second move of the same target done twice")
			}
			if err := s.SetCampaignWave(ctx, "c1", 0, 1); err != nil {
				t.Fatal(err)
			}
			if err := s.SetCampaignWave(ctx, "c1", 0, 1); !errors.Is(err, ErrConflict) {
				t.Fatalf("second wave move = %v, want ErrConflict", err)
			}
			got, err := s.Campaign(ctx, "c1")
			if err != nil || got.State != CampaignRunning || got.Wave != 1 || got.Package != "p.pkg" || len(got.Waves) != 2 {
				t.Fatalf("Campaign = %+v, %v", got, err)
			}
			ts, _ := s.Targets(ctx, "c1")
			if len(ts) != 2 || ts[0].State != TargetSent || ts[1].State != TargetPending {
				t.Fatalf("Targets = %+v", ts)
			}
		})

		t.Run("package cache", func(t *testing.T) {
			p := Package{Key: "k", Name: "k.pkg", SHA256: strings.Repeat("a", 64), Size: 9}
			if err := s.PutPackage(ctx, p); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Package(ctx, "k"); err != nil || got != p {
				t.Fatalf("Package = %+v, %v, want %+v", got, err, p)
			}
			if _, err := s.Package(ctx, "x"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Package(unknown) = %v", err)
			}
		})
	})
}

// TestNewStoreNewEpoch: a store rebuilt later starts a higher epoch, so
// nodes gated on the old one act on its documents.
func TestNewStoreNewEpoch(t *testing.T) {
	a := openStore(t, filepath.Join(t.TempDir(), "a.db"), t0)
	b := openStore(t, filepath.Join(t.TempDir(), "b.db"), t0.Add(time.Minute))
	ctx := context.Background()
	da, _ := a.SetDesired(ctx, "n", shadow.Desired{})
	for range 5 {
		da, _ = a.SetDesired(ctx, "n", shadow.Desired{})
	}
	db, _ := b.SetDesired(ctx, "n", shadow.Desired{})
	g := shadow.Gate{}.After(da)
	if v := g.Check(db); v != shadow.Act {
		t.Fatalf("gate after old store's v%d, new store's v%d: %v, want act", da.Version, db.Version, v)
	}
}

// TestStoreConcurrentOnce: two handles on one store (two instances) racing
// on the same node: every desired version is given once, a target moves
// once, a report seq is recorded once.
func TestStoreConcurrentOnce(t *testing.T) {
	stores(t, func(t *testing.T, open func(time.Time) Store) {
		ctx := context.Background()
		a, b := open(t0), open(t0)
		if err := a.CreateCampaign(ctx, Campaign{ID: "c", Waves: []float64{100}, State: CampaignRunning, Created: t0},
			[]Target{{Node: "n", State: TargetPending}}); err != nil {
			t.Fatal(err)
		}
		const each = 25
		type res struct {
			version uint64
			moved   bool
			rec     bool
			err     error
		}
		out := make(chan res, 4*each)
		for _, s := range []Store{a, b} {
			for i := range each {
				go func() {
					d, err := s.SetDesired(ctx, "n", shadow.Desired{Job: "j", Cancel: true})
					out <- res{version: d.Version, err: err}
				}()
				go func() {
					moved, err := s.MoveTarget(ctx, "c", "n", TargetPending, TargetSent, 0, t0)
					r, raw := report(uint64(i%5+1), "idle", "1.0", 0)
					rec, err2 := s.RecordReport(ctx, "n", uint64(i%5+1), r, raw, t0)
					out <- res{moved: moved, rec: rec, err: errors.Join(err, err2)}
				}()
			}
		}
		versions := map[uint64]bool{}
		moves, recs := 0, 0
		for range 4 * each {
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.version > 0 {
				if versions[r.version] {
					t.Fatalf("version %d given twice", r.version)
				}
				versions[r.version] = true
			}
			if r.moved {
				moves++
			}
			if r.rec {
				recs++
			}
		}
		if len(versions) != 2*each || moves != 1 || recs < 1 || recs > 5 {
			t.Fatalf("%d versions, %d moves, %d reports recorded; want %d, 1, 1..5", len(versions), moves, recs, 2*each)
		}
		h, _ := a.History(ctx, "n")
		if len(h) != recs {
			t.Fatalf("history of %d reports, %d recorded", len(h), recs)
		}
	})
}
