package clocktest

import (
	"testing"
	"time"
)

func TestAdvanceFiresInOrder(t *testing.T) {
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	c := New(start)
	late, early, stopped := c.NewTimer(2*time.Second), c.NewTimer(time.Second), c.NewTimer(time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer = false, want true")
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-early.C():
		t.Fatal("timer fired before its deadline")
	default:
	}
	c.Advance(time.Millisecond)
	if got, want := <-early.C(), start.Add(time.Second); !got.Equal(want) {
		t.Errorf("early fired at %v, want %v", got, want)
	}
	if got, want := c.Pending(), 1; got != want {
		t.Errorf("Pending() = %d, want %d", got, want)
	}
	c.Advance(time.Hour)
	if got, want := <-late.C(), start.Add(2*time.Second); !got.Equal(want) {
		t.Errorf("late fired at %v, want %v", got, want)
	}
	select {
	case <-stopped.C():
		t.Error("a stopped timer fired")
	default:
	}
	if early.Stop() {
		t.Error("Stop of a fired timer = true, want false")
	}
	if got, want := c.Now(), start.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}

func TestWaitTimers(t *testing.T) {
	c := New(time.Time{})
	go c.NewTimer(time.Minute)
	if !c.WaitTimers(1, 5*time.Second) {
		t.Fatal("WaitTimers(1) = false, want true")
	}
	if c.WaitTimers(2, 10*time.Millisecond) {
		t.Fatal("WaitTimers(2) = true with one timer")
	}
}
