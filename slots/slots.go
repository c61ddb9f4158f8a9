package slots

import (
	"errors"
	"fmt"

	"meterupd/boards/hw"
)

// State is a slot's state. It is stored in the journal: never rename a value.
type State string

const (
	Empty    State = "empty"
	Updating State = "updating"
	Ready    State = "ready"
	Trial    State = "trial"
	Good     State = "good"
	Bad      State = "bad"
)

// States lists every state, for tables and validation.
var States = []State{Empty, Updating, Ready, Trial, Good, Bad}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Event is what happens to a slot.
type Event string

const (
	Write  Event = "write"
	Verify Event = "verify"
	Arm    Event = "arm"
	Commit Event = "commit"
	Fail   Event = "fail"
)

// Events lists every event.
var Events = []Event{Write, Verify, Arm, Commit, Fail}

// ErrIllegal is returned for a transition the model forbids.
var ErrIllegal = errors.New("slots: illegal transition")

var legal = map[Event][]State{
	Write:  {Empty, Good, Bad, Ready},
	Verify: {Updating},
	Arm:    {Ready},
	Commit: {Trial},
	Fail:   {Updating, Ready, Trial, Good},
}

var target = map[Event]State{
	Write:  Updating,
	Verify: Ready,
	Arm:    Trial,
	Commit: Good,
	Fail:   Bad,
}

// Next returns the state slot s moves to from state from on event ev.
// F never changes; an unknown state or event is illegal.
func Next(s hw.Slot, from State, ev Event) (State, error) {
	if s == hw.SlotF {
		return from, fmt.Errorf("%w: %s on the fail-safe slot F", ErrIllegal, ev)
	}
	if !s.Valid() {
		return from, fmt.Errorf("%w: unknown slot %q", ErrIllegal, s)
	}
	for _, st := range legal[ev] {
		if st == from {
			return target[ev], nil
		}
	}
	return from, fmt.Errorf("%w: %s slot %s is %s", ErrIllegal, ev, s, from)
}

// Role is what a slot is for right now.
type Role string

const (
	Active   Role = "active"    // running now
	Idle     Role = "idle"      // updatable and not running
	FailSafe Role = "fail-safe" // F
)

// RoleOf returns the role of slot s when slot booted runs.
func RoleOf(s, booted hw.Slot) Role {
	switch {
	case s == hw.SlotF:
		return FailSafe
	case s == booted:
		return Active
	default:
		return Idle
	}
}

// Other returns the other updatable slot.
func Other(s hw.Slot) hw.Slot {
	if s == hw.SlotA {
		return hw.SlotB
	}
	return hw.SlotA
}

// IdleSlot picks the slot to write when booted runs. On A or B it is the
// other one. On F both are idle: it takes one that is not good, preferring
// A, so that a good set, if there is one, is kept as a fallback.
func IdleSlot(booted hw.Slot, state func(hw.Slot) State) hw.Slot {
	if booted != hw.SlotF {
		return Other(booted)
	}
	if state(hw.SlotA) != Good || state(hw.SlotB) == Good {
		return hw.SlotA
	}
	return hw.SlotB
}
