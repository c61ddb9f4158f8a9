package node

import (
	"testing"
	"time"

	"meterupd/agent"
)

// TestLockoutEscalates: 5 failures in a row lock for 15 min, the next 5
// for 1 h, then 24 h for every further lockout; a failure in between only
// counts.
func TestLockoutEscalates(t *testing.T) {
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	var g agent.ConsoleGuard
	var got []time.Duration
	for i := 0; i < 4*MaxFails; i++ {
		var locked time.Duration
		g, locked = failed(g, now)
		if locked > 0 {
			got = append(got, locked)
			if g.Fails != 0 || g.Until != now.Add(locked).Unix() {
				t.Errorf("guard after a lockout: %+v", g)
			}
		} else if g.Fails != i%MaxFails+1 {
			t.Errorf("failure %d: guard %+v", i+1, g)
		}
	}
	want := []time.Duration{15 * time.Minute, time.Hour, 24 * time.Hour, 24 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("lockouts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("lockout %d: %s, want %s", i+1, got[i], want[i])
		}
	}
	if g.Lockouts != 4 {
		t.Errorf("lockouts counted %d, want 4", g.Lockouts)
	}
}
