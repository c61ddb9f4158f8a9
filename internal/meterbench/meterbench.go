// Package meterbench is the metering benchmark (make bench-metering): does
// an update's apply starve the metrology process on a single-core meter?
//
// The benchmark pins itself and its children to one CPU (the caller runs
// it under taskset) and runs four phases, each metering the same number of
// scaled intervals with the simulated metrology process (metrosim):
//
//	baseline     metrosim alone
//	throttled    and an apply load at the default throttle, low priority
//	unthrottled  and the same load with every brake off, normal priority
//	baseline2    metrosim alone again
//
// The apply load is the agent's real write path on the sim board: a delta
// chain (two hops, node format) applied with the delta engine from slot A
// into slot B, erase block by erase block, through throttle.Flash, again
// and again until the phase ends. After each block the slot file is
// fsynced: on a meter a program through MTD is done when the call
// returns, while the sim's file writes would otherwise sit in the page
// cache and cost nothing.
//
// Verdicts: a baseline that misses an interval makes the whole run
// inconclusive (a noisy machine proves nothing); an unthrottled phase that
// misses nothing makes it inconclusive too (the load did no damage, so the
// throttle's absence of damage proves nothing); otherwise throttled is ok
// with missed=0 and degraded with any miss.
package meterbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/delta"
	"meterupd/internal/metrosim"
	"meterupd/throttle"
)

// Files of a prepared benchmark directory.
const (
	nodeDir  = "node"
	delta12  = "1-2.node"
	delta23  = "2-3.node"
	gateFile = "closing"
	readings = "readings.bin"
)

// Prepare makes, in dir, a sim node with a size-byte image of version 1.0
// in slots A and F and the deltas 1.0→2.0 and 2.0→3.0.
func Prepare(dir string, size int) error {
	g := sim.DefaultGeometry()
	g.SlotSize = max(g.SlotSize, int64(size+int(g.EraseSize)-1)/g.EraseSize*g.EraseSize)
	if err := sim.Create(filepath.Join(dir, nodeDir), g); err != nil {
		return err
	}
	v1, v2, v3 := sim.Image(size, "1.0"), sim.Image(size, "2.0"), sim.Image(size, "3.0")
	if err := sim.WriteFactory(filepath.Join(dir, nodeDir), v1); err != nil {
		return err
	}
	for _, d := range []struct {
		name     string
		old, new []byte
	}{{delta12, v1, v2}, {delta23, v2, v3}} {
		p, err := delta.Diff(d.old, d.new, delta.FormatNode)
		if err != nil {
			return fmt.Errorf("meterbench: diff: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, d.name), p, 0o644); err != nil {
			return fmt.Errorf("meterbench: %w", err)
		}
	}
	return nil
}

// LoadResult is what an apply load did.
type LoadResult struct {
	Bytes    int64          `json:"bytes"`
	Seconds  float64        `json:"seconds"`
	Applies  int            `json:"applies"`
	Throttle throttle.Stats `json:"throttle"`
}

// MiBs is the apply speed in MiB/s.
func (r LoadResult) MiBs() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / (1 << 20) / r.Seconds
}

// Load applies the chain from slot A to slot B again and again until ctx
// is done (or, when applies > 0, that many times), through a throttle with
// options o.
func Load(ctx context.Context, dir string, o throttle.Options, applies int) (LoadResult, error) {
	b, err := sim.Open(filepath.Join(dir, nodeDir))
	if err != nil {
		return LoadResult{}, err
	}
	defer b.Close()
	src, _ := b.Slot(hw.SlotA)
	dst, _ := b.Slot(hw.SlotB)
	hdr, err := sim.ReadImageHeader(src)
	if err != nil {
		return LoadResult{}, err
	}
	sync, err := os.OpenFile(filepath.Join(dir, nodeDir, string(hw.SlotB)+".bin"), os.O_RDWR, 0)
	if err != nil {
		return LoadResult{}, fmt.Errorf("meterbench: %w", err)
	}
	defer sync.Close()
	th := throttle.New(o)
	w := &slotWriter{f: th.Flash(ctx, dst), sync: sync, es: dst.EraseSize()}
	start := time.Now()
	var res LoadResult
	for ctx.Err() == nil && (applies <= 0 || res.Applies < applies) {
		var patches []io.Reader
		var files []*os.File
		for _, n := range []string{delta12, delta23} {
			f, err := os.Open(filepath.Join(dir, n))
			if err != nil {
				return res, fmt.Errorf("meterbench: %w", err)
			}
			files = append(files, f)
			patches = append(patches, f)
		}
		_, err := delta.Apply(ctx, src, hdr.Size, patches, w, delta.Options{BlockSize: dst.EraseSize(), MaxSize: dst.Size()})
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return res, fmt.Errorf("meterbench: apply: %w", err)
		}
		res.Applies++
	}
	res.Bytes, res.Seconds, res.Throttle = w.bytes, time.Since(start).Seconds(), th.Stats()
	return res, nil
}

// slotWriter erases and programs each block, then syncs the slot file.
type slotWriter struct {
	f     hw.Flash
	sync  *os.File
	es    int64
	bytes int64
	pad   []byte
}

func (s *slotWriter) WriteBlock(i int64, p []byte) error {
	off := i * s.es
	if err := s.f.Erase(off, s.es); err != nil {
		return err
	}
	ws := s.f.WriteSize()
	n := (int64(len(p)) + ws - 1) / ws * ws
	if n != int64(len(p)) {
		s.pad = append(append(s.pad[:0], p...), bytes.Repeat([]byte{0xFF}, int(n)-len(p))...)
		p = s.pad
	}
	if _, err := s.f.WriteAt(p, off); err != nil {
		return err
	}
	s.bytes += int64(len(p))
	return s.sync.Sync()
}

// Phase names, in the order Run runs them.
var Phases = []string{"baseline", "throttled", "unthrottled", "baseline2"}

// PhaseResult is one phase's outcome.
type PhaseResult struct {
	Phase   string
	Summary metrosim.Summary
	Load    LoadResult
	Verdict string
}

// Line is the phase's report line.
func (p PhaseResult) Line() string {
	return fmt.Sprintf("metering: phase=%s intervals=%d missed=%d p99_close_ms=%.1f apply_mib_s=%.2f verdict=%s",
		p.Phase, p.Summary.Intervals, p.Summary.Missed, float64(p.Summary.P99Close)/float64(time.Millisecond), p.Load.MiBs(), p.Verdict)
}

// Detail is the phase's diagnostics: why intervals were missed.
func (p PhaseResult) Detail() string {
	s := p.Summary
	return fmt.Sprintf("bench-metering: phase=%s late_closes=%d short_intervals=%d min_samples=%d max_close_ms=%.1f gate_pause_ms=%d rate_wait_ms=%d yields=%d",
		p.Phase, s.LateCloses, s.ShortCounts, s.MinSamples, float64(s.MaxClose)/float64(time.Millisecond),
		p.Load.Throttle.GatePause.Milliseconds(), p.Load.Throttle.RateWait.Milliseconds(), p.Load.Throttle.Yields)
}

// Judge sets the verdicts of the four phases (in Phases order) and reports
// whether the run passed: clean baselines, damage unthrottled, none
// throttled.
func Judge(ps []PhaseResult) bool {
	by := map[string]*PhaseResult{}
	for i := range ps {
		by[ps[i].Phase] = &ps[i]
	}
	b1, th, un, b2 := by["baseline"], by["throttled"], by["unthrottled"], by["baseline2"]
	if b1 == nil || th == nil || un == nil || b2 == nil {
		return false
	}
	clean := b1.Summary.Missed == 0 && b2.Summary.Missed == 0
	for _, b := range []*PhaseResult{b1, b2} {
		b.Verdict = "ok"
		if b.Summary.Missed > 0 {
			b.Verdict = "inconclusive"
		}
	}
	damage := un.Summary.Missed > 0
	un.Verdict = "degraded"
	if !damage || !clean {
		un.Verdict = "inconclusive"
	}
	switch {
	case !clean || !damage:
		th.Verdict = "inconclusive"
	case th.Summary.Missed == 0:
		th.Verdict = "ok"
	default:
		th.Verdict = "degraded"
	}
	return th.Verdict == "ok"
}

// Config is a benchmark run.
type Config struct {
	Dir       string // prepared with Prepare
	Self      string // this program (for the load child: Self apply …)
	Metrosim  string // the metrosim program
	Intervals int
	// Work is the CPU time of each metrosim sample (its --work).
	Work     time.Duration
	Criteria metrosim.Criteria
	// KeepPriority: the throttled load does not lower its priority (to
	// measure the throttle alone).
	KeepPriority bool
	Log          io.Writer // progress; nil discards
}

// Run runs the four phases.
func Run(ctx context.Context, c Config) ([]PhaseResult, error) {
	var out []PhaseResult
	for _, phase := range Phases {
		if c.Log != nil {
			fmt.Fprintf(c.Log, "bench-metering: phase %s …\n", phase)
		}
		var load *exec.Cmd
		var loadOut bytes.Buffer
		if phase == "throttled" || phase == "unthrottled" {
			load = exec.CommandContext(ctx, c.Self, "apply", "--dir", c.Dir, "--mode", phase, fmt.Sprintf("--keep-priority=%v", c.KeepPriority))
			load.Stdout, load.Stderr = &loadOut, os.Stderr
			load.Cancel = func() error { return load.Process.Signal(syscall.SIGTERM) }
			if err := load.Start(); err != nil {
				return out, fmt.Errorf("meterbench: load: %w", err)
			}
			time.Sleep(500 * time.Millisecond) // the load's first applies are under way
		}
		ms := exec.CommandContext(ctx, c.Metrosim, "--intervals", fmt.Sprint(c.Intervals), "--work", c.Work.String(),
			"--readings", filepath.Join(c.Dir, readings), "--gate", filepath.Join(c.Dir, gateFile))
		msOut, err := ms.Output()
		var pr PhaseResult
		pr.Phase = phase
		if load != nil {
			load.Process.Signal(syscall.SIGTERM)
			if werr := load.Wait(); werr != nil {
				return out, fmt.Errorf("meterbench: load: %w", werr)
			}
			if jerr := json.Unmarshal(loadOut.Bytes(), &pr.Load); jerr != nil {
				return out, fmt.Errorf("meterbench: load output %q: %w", loadOut.String(), jerr)
			}
		}
		if err != nil {
			return out, fmt.Errorf("meterbench: metrosim: %w", err)
		}
		var rs []metrosim.IntervalResult
		dec := json.NewDecoder(bytes.NewReader(msOut))
		for {
			var r metrosim.IntervalResult
			if err := dec.Decode(&r); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return out, fmt.Errorf("meterbench: metrosim output: %w", err)
			}
			rs = append(rs, r)
		}
		pr.Summary = metrosim.Summarize(rs, c.Criteria)
		out = append(out, pr)
	}
	return out, nil
}

// ModeOptions returns the throttle options of a load mode, and whether the
// load lowers its priority.
func ModeOptions(dir, mode string) (throttle.Options, bool, error) {
	switch strings.TrimSpace(mode) {
	case "throttled":
		return throttle.Options{Gate: metrosim.FileGate(filepath.Join(dir, gateFile))}, true, nil
	case "unthrottled":
		return throttle.Unthrottled(), false, nil
	}
	return throttle.Options{}, false, fmt.Errorf("meterbench: unknown mode %q", mode)
}
