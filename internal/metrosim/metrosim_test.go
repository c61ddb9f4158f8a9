package metrosim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	c := Criteria{MaxClose: 50 * time.Millisecond, MinSamples: 98}
	ms := time.Millisecond
	rs := []IntervalResult{{100, 1 * ms}, {98, 2 * ms}, {97, 1 * ms}, {100, 51 * ms}, {100, 3 * ms}}
	got := Summarize(rs, c)
	if got.Intervals != 5 || got.Missed != 2 || got.P99Close != 51*ms {
		t.Errorf("Summarize = %+v, want 5 intervals, 2 missed, p99 51ms", got)
	}
	if got := Summarize(nil, c); got.Intervals != 0 || got.Missed != 0 {
		t.Errorf("Summarize(nil) = %+v", got)
	}
}

// TestRunShort meters two short intervals for real: every interval has a
// sample count and a close latency, the readings are durable, and the gate
// file is gone after the last close.
func TestRunShort(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "closing")
	rs, err := Run(context.Background(), Options{Sample: 5 * time.Millisecond, Interval: 50 * time.Millisecond, Intervals: 2,
		Readings: filepath.Join(dir, "r.bin"), GateFile: gate, Work: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("Run = %d intervals, want 2", len(rs))
	}
	for i, r := range rs {
		if r.Samples < 1 || r.Samples > 10 || r.Close <= 0 {
			t.Errorf("interval %d = %+v, want 1..10 samples and a positive close", i, r)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "r.bin")); err != nil || fi.Size() != 2*24 {
		t.Errorf("readings file: %v, %v; want 2 records of 24 bytes", fi, err)
	}
	if FileGate(gate).Closing() {
		t.Error("gate file left after the last close")
	}
}
