package slots

import (
	"errors"
	"testing"

	"meterupd/boards/hw"
)

// TestNextTable checks every (state, event) pair on an updatable slot.
func TestNextTable(t *testing.T) {
	want := map[State]map[Event]State{ // absent: illegal
		Empty:    {Write: Updating},
		Updating: {Verify: Ready, Fail: Bad},
		Ready:    {Write: Updating, Arm: Trial, Fail: Bad},
		Trial:    {Commit: Good, Fail: Bad},
		Good:     {Write: Updating, Fail: Bad},
		Bad:      {Write: Updating},
	}
	for _, from := range States {
		for _, ev := range Events {
			got, err := Next(hw.SlotB, from, ev)
			w, ok := want[from][ev]
			switch {
			case ok && (err != nil || got != w):
				t.Errorf("Next(B, %s, %s) = %s, %v; want %s, nil", from, ev, got, err, w)
			case !ok && !errors.Is(err, ErrIllegal):
				t.Errorf("Next(B, %s, %s) = %s, %v; want ErrIllegal", from, ev, got, err)
			case !ok && got != from:
				t.Errorf("Next(B, %s, %s) moved to %s on an illegal transition", from, ev, got)
			}
		}
	}
}

func TestNextNeverOnF(t *testing.T) {
	for _, from := range States {
		for _, ev := range Events {
			if _, err := Next(hw.SlotF, from, ev); !errors.Is(err, ErrIllegal) {
				t.Errorf("Next(F, %s, %s) err = %v, want ErrIllegal", from, ev, err)
			}
		}
	}
	if _, err := Next("X", Empty, Write); !errors.Is(err, ErrIllegal) {
		t.Errorf("Next(X) err = %v, want ErrIllegal", err)
	}
	if _, err := Next(hw.SlotA, "weird", Write); !errors.Is(err, ErrIllegal) {
		t.Errorf("Next(A, weird) err = %v, want ErrIllegal", err)
	}
}

func TestRolesAndIdle(t *testing.T) {
	tests := []struct {
		s, booted hw.Slot
		want      Role
	}{
		{hw.SlotA, hw.SlotA, Active}, {hw.SlotB, hw.SlotA, Idle},
		{hw.SlotF, hw.SlotA, FailSafe}, {hw.SlotF, hw.SlotF, FailSafe}, {hw.SlotA, hw.SlotF, Idle},
	}
	for _, tt := range tests {
		if got := RoleOf(tt.s, tt.booted); got != tt.want {
			t.Errorf("RoleOf(%s, booted %s) = %s, want %s", tt.s, tt.booted, got, tt.want)
		}
	}
	st := func(a, b State) func(hw.Slot) State {
		return func(s hw.Slot) State {
			if s == hw.SlotA {
				return a
			}
			return b
		}
	}
	idle := []struct {
		booted hw.Slot
		a, b   State
		want   hw.Slot
	}{
		{hw.SlotA, Good, Good, hw.SlotB},
		{hw.SlotB, Good, Good, hw.SlotA},
		{hw.SlotF, Bad, Bad, hw.SlotA},
		{hw.SlotF, Good, Bad, hw.SlotB}, // keep the good A
		{hw.SlotF, Bad, Good, hw.SlotA},
		{hw.SlotF, Good, Good, hw.SlotA},
	}
	for _, tt := range idle {
		if got := IdleSlot(tt.booted, st(tt.a, tt.b)); got != tt.want {
			t.Errorf("IdleSlot(booted %s, A %s, B %s) = %s, want %s", tt.booted, tt.a, tt.b, got, tt.want)
		}
	}
}
