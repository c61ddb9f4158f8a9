package meterbench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/internal/metrosim"
	"meterupd/throttle"
)

func TestJudge(t *testing.T) {
	ph := func(missed ...int) []PhaseResult {
		var ps []PhaseResult
		for i, m := range missed {
			ps = append(ps, PhaseResult{Phase: Phases[i], Summary: metrosim.Summary{Intervals: 10, Missed: m}})
		}
		return ps
	}
	tests := []struct {
		name     string
		missed   []int
		pass     bool
		verdicts string
	}{
		{"clean pass", []int{0, 0, 4, 0}, true, "ok ok degraded ok"},
		{"throttle fails", []int{0, 1, 4, 0}, false, "ok degraded degraded ok"},
		{"noisy baseline", []int{1, 0, 4, 0}, false, "inconclusive inconclusive inconclusive ok"},
		{"noisy baseline2", []int{0, 0, 4, 2}, false, "ok inconclusive inconclusive inconclusive"},
		{"no damage unthrottled", []int{0, 0, 0, 0}, false, "ok inconclusive inconclusive ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := ph(tt.missed...)
			got := Judge(ps)
			var v []string
			for _, p := range ps {
				v = append(v, p.Verdict)
			}
			if got != tt.pass || join(v) != tt.verdicts {
				t.Errorf("Judge(%v) = %v, %q; want %v, %q", tt.missed, got, join(v), tt.pass, tt.verdicts)
			}
		})
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestLine(t *testing.T) {
	p := PhaseResult{Phase: "throttled", Summary: metrosim.Summary{Intervals: 15, Missed: 0, P99Close: 4200 * time.Microsecond},
		Load: LoadResult{Bytes: 3 << 20, Seconds: 2}, Verdict: "ok"}
	want := "metering: phase=throttled intervals=15 missed=0 p99_close_ms=4.2 apply_mib_s=1.50 verdict=ok"
	if got := p.Line(); got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}

// TestLoadAppliesRealChain: the load is a real apply: slot B ends up
// holding version 3.0 exactly.
func TestLoadAppliesRealChain(t *testing.T) {
	dir := t.TempDir()
	const size = 256 << 10
	if err := Prepare(dir, size); err != nil {
		t.Fatal(err)
	}
	res, err := Load(context.Background(), dir, throttle.Unthrottled(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applies != 1 || res.Bytes < size {
		t.Fatalf("Load = %+v, want at least one whole apply", res)
	}
	b, err := sim.Open(dir + "/node")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, _ := b.Slot(hw.SlotB)
	got := make([]byte, size)
	f.ReadAt(got, 0)
	if !bytes.Equal(got, sim.Image(size, "3.0")) {
		t.Error("slot B does not hold version 3.0 after the load")
	}
}
