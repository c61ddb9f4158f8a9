package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/slots"
)

// stepBoard is a sim board on which the test decides which slot booted,
// and whose Reboot only counts: the side effects of one step are what is
// left in the journal, the boot control and the reboot count.
type stepBoard struct {
	*sim.Board
	booted  hw.Slot
	reboots int
}

func (b *stepBoard) Boot() hw.BootControl { return stepBoot{b.Board.Boot(), b} }
func (b *stepBoard) Reboot() error        { b.reboots++; return hw.ErrRebooted }

type stepBoot struct {
	hw.BootControl
	b *stepBoard
}

func (c stepBoot) Booted() (hw.Slot, error) { return c.b.booted, nil }

const stepSize = 128 << 10

// stepNode provisions a small sim node (1.0 in A and F) and returns its
// directory and the digest of 1.0.
func stepNode(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	g := sim.DefaultGeometry()
	g.SlotSize = stepSize
	if err := sim.Create(dir, g); err != nil {
		t.Fatal(err)
	}
	v1 := sim.Image(stepSize, "1.0")
	if err := sim.WriteFactory(dir, v1); err != nil {
		t.Fatal(err)
	}
	b, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sum := sha256.Sum256(v1)
	if err := Provision(b, Factory{Version: "1.0", SHA256: sum, Size: stepSize}); err != nil {
		t.Fatal(err)
	}
	return dir, hex.EncodeToString(sum[:])
}

func order(o ...any) hw.BootState {
	bs := hw.BootState{Left: map[hw.Slot]int{}}
	for i := 0; i < len(o); i += 2 {
		s := o[i].(hw.Slot)
		bs.Order = append(bs.Order, s)
		bs.Left[s] = o[i+1].(int)
	}
	return bs
}

// TestStep runs one step of the state machine from a (record, booted
// slot, boot state) and checks the next record and the side effects: the
// boot state left, whether the node rebooted.
func TestStep(t *testing.T) {
	const (
		A, B, F = hw.SlotA, hw.SlotB, hw.SlotF
	)
	good := func(v string) *SlotInfo { return &SlotInfo{State: slots.Good, Version: v} }
	// base: A 1.0 primary and good, B 2.0 good, F 1.0.
	base := func() *Record {
		return &Record{Version: 1, Primary: A, Slots: map[hw.Slot]*SlotInfo{A: good("1.0"), B: good("2.0"), F: good("1.0")}}
	}
	onlyA := func() *Record {
		r := base()
		r.Slots[B] = &SlotInfo{State: slots.Empty}
		return r
	}
	item := InstallItem{Kind: FullImage, Version: "2.0", SHA256: "", Size: stepSize, Payloads: []string{"x"}}
	upd := func(p Phase, starts int) func() *Record {
		return func() *Record {
			r := onlyA()
			st := map[Phase]slots.State{Downloaded: slots.Empty, Installed: slots.Ready, Activating: slots.Trial, Trial: slots.Trial,
				RollingBack: slots.Bad, FallingBack: slots.Bad}[p]
			r.Slots[B] = &SlotInfo{State: st, Version: "2.0", Size: stepSize}
			r.Update = &Update{ID: "u1", Phase: p, Target: B, From: A, Item: item, Starts: starts, Seq: 9, Activate: true}
			if p == RollingBack || p == FallingBack {
				r.Update.Reason = "rejected"
			}
			if p == FallingBack {
				r.Slots[A] = &SlotInfo{State: slots.Bad, Version: "1.0", Reason: "failed too"}
			}
			return r
		}
	}
	healthy := []HealthCheck{{Name: "ok", Check: func(context.Context, hw.Slot, SlotInfo) error { return nil }}}
	sick := []HealthCheck{{Name: "metrology", Check: func(context.Context, hw.Slot, SlotInfo) error { return errors.New("no readings") }}}

	tests := []struct {
		name    string
		rec     func() *Record
		booted  hw.Slot
		boot    *hw.BootState // nil: both boot-record copies corrupt
		health  []HealthCheck
		want    func(r *Record) // edits the input record into the expected one
		wantBS  *hw.BootState   // nil: boot state unchanged
		reboot  bool
		done    bool
		wantErr bool
	}{
		{name: "rest on the primary restores its attempts", rec: base, booted: A, boot: ptr(order(A, 1, B, 3)),
			want: func(r *Record) {}, wantBS: ptr(order(A, 3, B, 3)), done: true},
		{name: "the primary ran out of attempts, the other good set runs", rec: base, booted: B, boot: ptr(order(A, 0, B, 2)),
			want: func(r *Record) {
				why := "A did not boot: the bootloader's attempts ran out and it started B"
				r.Slots[A].State, r.Slots[A].Reason, r.Primary = slots.Bad, why, B
				r.Last = &Result{Code: RolledBack, Version: "2.0", Slot: B, Reason: why}
			}, wantBS: ptr(order(B, 3)), done: true},
		{name: "fall back to F: every good set tried", rec: base, booted: F, boot: ptr(order(A, 0, B, 0)),
			want: func(r *Record) {
				why := "A did not boot and no other good set did: the bootloader started the factory set F"
				r.Slots[A].State, r.Slots[A].Reason = slots.Bad, why
				r.Slots[B].State, r.Slots[B].Reason = slots.Bad, why
				r.Primary = F
				r.Last = &Result{Code: FellBack, Version: "1.0", Slot: F, Reason: why}
			}, wantBS: ptr(order()), done: true},
		{name: "on F with the boot record lost: repair from the journal, mark nothing", rec: base, booted: F, boot: nil,
			want: func(r *Record) { r.BootRepairs = 1 }, wantBS: ptr(order(A, 3, B, 3)), reboot: true, done: true, wantErr: true},
		{name: "on F with U-Boot's default environment (no order): repair", rec: base, booted: F, boot: ptr(order()),
			want: func(r *Record) { r.BootRepairs = 1 }, wantBS: ptr(order(A, 3, B, 3)), reboot: true, done: true, wantErr: true},
		{name: "on F, only A tried: A bad, B untried and still good", rec: base, booted: F, boot: ptr(order(A, 0, B, 3)),
			want: func(r *Record) {
				r.Slots[A].State = slots.Bad
				r.Slots[A].Reason = "A did not boot and no other good set did: the bootloader started the factory set F"
				r.BootRepairs = 1
			}, wantBS: ptr(order(B, 3)), reboot: true, done: true, wantErr: true},
		{name: "boot repairs exhausted: stay on F, mark nothing", rec: func() *Record { r := base(); r.BootRepairs = maxBootRepairs; return r },
			booted: F, boot: nil, want: func(r *Record) {}, done: true},
		{name: "repaired: the primary runs again, the count clears", rec: func() *Record { r := base(); r.BootRepairs = 2; return r },
			booted: A, boot: ptr(order(A, 2, B, 3)), want: func(r *Record) { r.BootRepairs = 0 }, wantBS: ptr(order(A, 3, B, 3)), done: true},
		{name: "reconciling onto F: primary F stays", rec: func() *Record {
			r := base()
			r.Slots[A].State, r.Slots[B].State, r.Primary = slots.Bad, slots.Bad, F
			return r
		}, booted: F, boot: ptr(order()), want: func(r *Record) {}, done: true},
		{name: "booted a set that is not good: order put right, reboot", rec: onlyA, booted: B, boot: ptr(order(B, 2, A, 3)),
			want: func(r *Record) {}, wantBS: ptr(order(A, 3)), reboot: true, done: true, wantErr: true},
		{name: "downloaded: the slot is updating before its first erase", rec: upd(Downloaded, 0), booted: A, boot: ptr(order(A, 3)),
			want: func(r *Record) {
				r.Slots[B] = &SlotInfo{State: slots.Updating}
				r.Update.Phase = Installing
			}},
		{name: "installed, no activation asked: waits", rec: func() *Record { r := upd(Installed, 0)(); r.Update.Activate = false; return r },
			booted: A, boot: ptr(order(A, 3)), want: func(r *Record) {}, done: true},
		{name: "installed: activation consumes the package", rec: upd(Installed, 5), booted: A, boot: ptr(order(A, 3)),
			want: func(r *Record) {
				r.Slots[B].State, r.Update.Phase, r.Update.Starts, r.Floor = slots.Trial, Activating, 0, 9
			}},
		{name: "activating: arm the trial, reboot", rec: upd(Activating, 0), booted: A, boot: ptr(order(A, 3)),
			want: func(r *Record) {}, wantBS: ptr(order(B, 3, A, 3)), reboot: true, wantErr: true},
		{name: "activating, no start since arming: attempts not evidence", rec: upd(Activating, 0), booted: A, boot: ptr(order(B, 0, A, 3)),
			want: func(r *Record) {}, reboot: true, wantErr: true},
		{name: "the trial never booted", rec: upd(Activating, 1), booted: A, boot: ptr(order(B, 0, A, 2)),
			want: func(r *Record) {
				why := "the new set in B did not boot: the bootloader's 3 attempts ran out and it started A"
				r.Slots[B].State, r.Slots[B].Reason = slots.Bad, why
				r.Update.Phase, r.Update.Reason = RollingBack, why
			}},
		{name: "activating: the trial runs", rec: upd(Activating, 1), booted: B, boot: ptr(order(B, 2, A, 3)),
			want: func(r *Record) { r.Update.Phase = Trial }},
		{name: "trial healthy: committed", rec: upd(Trial, 1), booted: B, boot: ptr(order(B, 2, A, 3)), health: healthy,
			want: func(r *Record) {
				r.Slots[B].State, r.Primary, r.Update = slots.Good, B, nil
				r.Last = &Result{ID: "u1", Code: Committed, Version: "2.0", Slot: B}
			}},
		{name: "trial sick: rejected", rec: upd(Trial, 1), booted: B, boot: ptr(order(B, 2, A, 3)), health: sick,
			want: func(r *Record) {
				why := "health check failed on the new set: metrology: no readings"
				r.Slots[B].State, r.Slots[B].Reason = slots.Bad, why
				r.Update.Phase, r.Update.Reason = RollingBack, why
			}},
		{name: "trial on F with the boot record lost: re-armed, not rejected", rec: upd(Trial, 1), booted: F, boot: nil,
			want: func(r *Record) { r.BootRepairs = 1 }, wantBS: ptr(order(B, 3, A, 3)), reboot: true, wantErr: true},
		{name: "rolling back on F with the boot record lost: back to A, A not blamed", rec: upd(RollingBack, 1), booted: F, boot: nil,
			want: func(r *Record) { r.BootRepairs = 1 }, wantBS: ptr(order(A, 3)), reboot: true, wantErr: true},
		{name: "trial stopped booting", rec: upd(Trial, 2), booted: A, boot: ptr(order(B, 0, A, 3)),
			want: func(r *Record) {
				why := "the new set in B stopped booting: the bootloader started A"
				r.Slots[B].State, r.Slots[B].Reason = slots.Bad, why
				r.Update.Phase, r.Update.Reason = RollingBack, why
			}},
		{name: "rolling back, previous set healthy", rec: upd(RollingBack, 1), booted: A, boot: ptr(order(A, 2)), health: healthy,
			want: func(r *Record) {
				r.Update = nil
				r.Last = &Result{ID: "u1", Code: RolledBack, Version: "1.0", Slot: A, Reason: "rejected"}
			}, wantBS: ptr(order(A, 3))},
		{name: "rolling back, still on the rejected set", rec: upd(RollingBack, 1), booted: B, boot: ptr(order(B, 1, A, 3)),
			want: func(r *Record) {}, wantBS: ptr(order(A, 3)), reboot: true, wantErr: true},
		{name: "rolling back, the previous set did not boot: F", rec: upd(RollingBack, 2), booted: F, boot: ptr(order(A, 0)),
			want: func(r *Record) {
				why := "rejected; then the previous set in A did not boot"
				r.Slots[A].State, r.Slots[A].Reason = slots.Bad, why
				r.Update.Phase, r.Update.Reason = FallingBack, why
			}, wantBS: ptr(order(A, 3))},
		{name: "falling back: settle on F", rec: upd(FallingBack, 3), booted: F, boot: ptr(order()),
			want: func(r *Record) {
				r.Primary, r.Update = F, nil
				r.Last = &Result{ID: "u1", Code: FellBack, Version: "1.0", Slot: F, Reason: "rejected"}
			}},
		{name: "unknown phase", rec: func() *Record { r := upd(Trial, 1)(); r.Update.Phase = "scheduled"; return r },
			booted: B, boot: ptr(order(B, 2)), want: func(r *Record) {}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, sha := stepNode(t)
			sb, err := sim.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			b := &stepBoard{Board: sb, booted: tt.booted}
			in := tt.rec()
			for _, s := range []hw.Slot{A, F} {
				if in.Slots[s].Version == "1.0" {
					in.Slots[s].SHA256, in.Slots[s].Size = sha, stepSize
				}
			}
			if tt.boot != nil {
				if err := sb.Boot().Store(*tt.boot); err != nil {
					t.Fatal(err)
				}
			} else {
				CorruptSimBootRecord(t, dir)
			}
			a, err := Open(Options{Board: b, Health: tt.health})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.commit(in.clone()); err != nil {
				t.Fatal(err)
			}
			before, _ := sb.Boot().Load()
			want := in.clone()
			tt.want(want)

			done, err := a.step(context.Background())

			if (err != nil) != tt.wantErr {
				t.Errorf("step() error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && done != tt.done {
				t.Errorf("step() done = %v, want %v", done, tt.done)
			}
			if diff := cmp.Diff(want, a.rec); diff != "" {
				t.Errorf("record after step (-want +got):\n%s", diff)
			}
			// What survives on flash is what the journal says.
			a2, err := Open(Options{Board: b})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(a.rec, a2.rec); diff != "" {
				t.Errorf("journal on flash differs from the agent's record (-mem +flash):\n%s", diff)
			}
			gotBS, lerr := sb.Boot().Load()
			wantBS := tt.wantBS
			if wantBS == nil {
				wantBS = &before
				if tt.boot == nil {
					if lerr == nil {
						t.Errorf("boot state %+v written, want the lost state left alone", gotBS)
					}
					wantBS = nil
				}
			}
			if wantBS != nil && !sameBoot(gotBS, *wantBS) {
				t.Errorf("boot state after step = %+v (%v), want %+v", gotBS, lerr, *wantBS)
			}
			if got := b.reboots > 0; got != tt.reboot {
				t.Errorf("rebooted = %v, want %v", got, tt.reboot)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// CorruptSimBootRecord flips one byte in each copy of the sim's boot
// record, as a failing flash would. (Exported for the agent_test tests.)
func CorruptSimBootRecord(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, sim.PartBootctl+".bin")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	es := sim.DefaultGeometry().EraseSize
	data[13] ^= 0x5a
	data[es+13] ^= 0x5a
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
