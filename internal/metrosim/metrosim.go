// Package metrosim is a simulated metrology process for the metering
// benchmark: it samples at a fixed period, closes an interval every
// Interval (a scaled-down billing interval: 10 ms samples, 1 s intervals by
// default, where a meter has e.g. 1 s samples and 15 min intervals), and
// records for each interval how late its close completed and how many
// samples it took.
//
// The ADC takes a sample at each multiple of Sample after the start and
// keeps the newest FIFO samples (default 4, 40 ms at the default scaling);
// the process reads them when it runs. A sample overwritten before the
// process read it is lost: a starved process loses samples, not just time. The close at each interval boundary takes the
// interval's last sample, appends one reading to the readings file and
// fsyncs it (the reading is durable, as on flash), and reports the close
// latency: from the boundary to the fsync's return.
//
// While closing, the process says so: the gate file exists from CloseLead
// before the boundary until the close is durable. The agent's throttle
// pauses while it exists (throttle.Gate; see FileGate).
package metrosim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"time"
)

// Options configure Run.
type Options struct {
	Sample    time.Duration // sampling period (default 10 ms)
	Interval  time.Duration // interval length (default 1 s)
	Intervals int           // how many intervals to run
	CloseLead time.Duration // how long before the boundary the gate opens (default 3 samples)
	Readings  string        // the readings file (appended and fsynced at each close)
	GateFile  string        // the gate file; "" for none
	// FIFO is how many samples the ADC buffers (default 4): a sample is
	// lost when the process has not read it before FIFO newer ones came.
	FIFO int
	// Work is the CPU work per sample, in iterations of a small filter
	// (default 2000: tens of microseconds). WorkTime, when set, replaces
	// it: Run calibrates the iterations that take WorkTime on this CPU
	// before it starts metering (a metrology process's signal processing
	// takes a good share of a meter SoC's single core).
	Work     int
	WorkTime time.Duration
}

// IntervalResult is one interval's outcome.
type IntervalResult struct {
	Samples int           `json:"samples"`
	Close   time.Duration `json:"close_ns"`
}

// Run meters for o.Intervals intervals and returns each one's result.
func Run(ctx context.Context, o Options) ([]IntervalResult, error) {
	if o.Sample <= 0 {
		o.Sample = 10 * time.Millisecond
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.CloseLead <= 0 {
		o.CloseLead = 3 * o.Sample
	}
	burn := func(k int) float64 { return work(o.Work, k) }
	if o.WorkTime > 0 {
		runtime.LockOSThread() // the thread's CPU clock is this goroutine's
		defer runtime.UnlockOSThread()
		burn = func(k int) float64 { return workFor(o.WorkTime, k) }
	}
	if o.Work <= 0 {
		o.Work = 2000
	}
	if o.FIFO <= 0 {
		o.FIFO = 4
	}
	if o.Interval%o.Sample != 0 || o.Intervals <= 0 {
		return nil, errors.New("metrosim: interval must be a positive multiple of the sample period, intervals positive")
	}
	rf, err := os.OpenFile(o.Readings, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrosim: %w", err)
	}
	defer rf.Close()
	per := int64(o.Interval / o.Sample)
	start := time.Now()
	at := func(k int64) time.Time { return start.Add(time.Duration(k) * o.Sample) }
	var out []IntervalResult
	acc := 0.0
	samples := 0
	gateOpen := false
	last := int64(0) // the last sample slot handled
	for len(out) < o.Intervals {
		// Open the gate ahead of the next boundary.
		boundary := (last/per + 1) * per
		if o.GateFile != "" && !gateOpen && time.Until(at(boundary)) <= o.CloseLead {
			if f, err := os.Create(o.GateFile); err == nil {
				f.Close()
				gateOpen = true
			}
		}
		wake := at(last + 1)
		if o.GateFile != "" && !gateOpen && at(boundary).Add(-o.CloseLead).Before(wake) {
			wake = at(boundary).Add(-o.CloseLead) // wake to open the gate
		}
		if d := time.Until(wake); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return out, ctx.Err()
			case <-t.C:
			}
			if time.Now().Before(at(last + 1)) {
				continue // woke to open the gate
			}
		}
		avail := int64(time.Since(start) / o.Sample) // slots whose sample the ADC has taken
		for k := last + 1; k <= avail && len(out) < o.Intervals; k++ {
			if avail-k < int64(o.FIFO) { // still in the FIFO: not overwritten
				acc += burn(int(k))
				samples++
			}
			if k%per != 0 {
				continue
			}
			var rec [24]byte
			binary.LittleEndian.PutUint64(rec[0:], uint64(k/per))
			binary.LittleEndian.PutUint64(rec[8:], math.Float64bits(acc))
			binary.LittleEndian.PutUint64(rec[16:], uint64(samples))
			if _, err := rf.Write(rec[:]); err != nil {
				return out, fmt.Errorf("metrosim: %w", err)
			}
			if err := rf.Sync(); err != nil {
				return out, fmt.Errorf("metrosim: %w", err)
			}
			out = append(out, IntervalResult{Samples: samples, Close: time.Since(at(k))})
			if gateOpen {
				os.Remove(o.GateFile)
				gateOpen = false
			}
			samples = 0
		}
		last = avail
	}
	return out, nil
}

// work is the per-sample computation: a short IIR filter over a synthetic
// waveform (what a metrology process does with each ADC sample, scaled).
func work(n, k int) float64 {
	y := 0.0
	for i := 0; i < n; i++ {
		x := math.Sin(float64(k*n+i) * 0.001)
		y = 0.99*y + 0.01*x*x
	}
	return y
}

// workFor runs the filter until the thread has used d of CPU time (on
// Linux, its CPU clock; elsewhere wall time), so the load is the same on a
// fast or a slow, a quiet or a contended CPU.
func workFor(d time.Duration, k int) float64 {
	start := cpuTime()
	y := 0.0
	for i := 0; cpuTime()-start < d; i++ {
		y += work(200, k+i)
	}
	return y
}

// Criteria say when an interval is missed.
type Criteria struct {
	MaxClose   time.Duration // a close later than this misses the interval
	MinSamples int           // fewer samples than this misses the interval
}

// DefaultCriteria for the default scaling (10 ms samples, 1 s intervals):
// a close may take up to 5 % of the interval (50 ms), and an interval may
// lose at most 2 of its 100 samples.
func DefaultCriteria() Criteria { return Criteria{MaxClose: 50 * time.Millisecond, MinSamples: 98} }

// Summary is one run's result.
type Summary struct {
	Intervals int
	Missed    int
	P99Close  time.Duration
	// Diagnostics: why intervals were missed.
	LateCloses  int           // intervals closed later than MaxClose
	ShortCounts int           // intervals with fewer than MinSamples samples
	MinSamples  int           // the fewest samples of an interval
	MaxClose    time.Duration // the latest close
}

// Summarize applies c to rs.
func Summarize(rs []IntervalResult, c Criteria) Summary {
	s := Summary{Intervals: len(rs)}
	lat := make([]time.Duration, 0, len(rs))
	for i, r := range rs {
		late, short := r.Close > c.MaxClose, r.Samples < c.MinSamples
		if late || short {
			s.Missed++
		}
		if late {
			s.LateCloses++
		}
		if short {
			s.ShortCounts++
		}
		if i == 0 || r.Samples < s.MinSamples {
			s.MinSamples = r.Samples
		}
		s.MaxClose = max(s.MaxClose, r.Close)
		lat = append(lat, r.Close)
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		i := int(math.Ceil(0.99*float64(len(lat)))) - 1
		s.P99Close = lat[max(i, 0)]
	}
	return s
}

// FileGate is the throttle's view of the gate file: closing while it exists.
type FileGate string

// Closing reports whether the gate file exists.
func (g FileGate) Closing() bool {
	_, err := os.Stat(string(g))
	return err == nil
}
