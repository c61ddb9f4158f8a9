package throttle

import (
	"context"
	"io"
	"sync"
	"time"

	"meterupd/boards/hw"
)

// Gate is what the metrology process (through the board or the daemon)
// tells the throttle: whether it is closing an interval right now.
type Gate interface {
	Closing() bool
}

// Clock is the time the throttle waits on.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Defaults: see docs/metering.md for how they were chosen (the metering
// benchmark).
const (
	DefaultBytesPerSec = 1 << 20
	DefaultBurst       = 64 << 10
	DefaultChunk       = 16 << 10
	DefaultYieldEvery  = 64 << 10
	DefaultYield       = 2 * time.Millisecond
	DefaultPollGate    = 5 * time.Millisecond
	DefaultMaxPause    = 10 * time.Second
)

// Options configure a Throttle. Zero fields take the defaults; a negative
// BytesPerSec or YieldEvery disables that brake.
type Options struct {
	BytesPerSec int64
	Burst       int64
	Chunk       int // the largest piece the wrappers pass on at once
	YieldEvery  int64
	Yield       time.Duration
	Gate        Gate // nil: never paused
	PollGate    time.Duration
	MaxPause    time.Duration
	Clock       Clock // nil: SystemClock
}

// Unthrottled returns options with every brake off: for measurements.
func Unthrottled() Options { return Options{BytesPerSec: -1, YieldEvery: -1} }

// Stats are what a Throttle did.
type Stats struct {
	Bytes       int64
	RateWait    time.Duration // slept for the byte rate
	GatePause   time.Duration // slept while the gate was closing
	GateTimeout int           // pauses cut short by MaxPause
	Yields      int
}

// Throttle paces work. It is safe for concurrent use: the budget is shared.
type Throttle struct {
	o Options

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	sinceYield int64
	st         Stats
}

// New returns a Throttle.
func New(o Options) *Throttle {
	if o.BytesPerSec == 0 {
		o.BytesPerSec = DefaultBytesPerSec
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.YieldEvery == 0 {
		o.YieldEvery = DefaultYieldEvery
	}
	if o.Yield <= 0 {
		o.Yield = DefaultYield
	}
	if o.PollGate <= 0 {
		o.PollGate = DefaultPollGate
	}
	if o.MaxPause <= 0 {
		o.MaxPause = DefaultMaxPause
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	return &Throttle{o: o, tokens: float64(o.Burst), last: o.Clock.Now()}
}

// Stats returns what the throttle did so far.
func (t *Throttle) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

// Wait blocks before n bytes of work: while the gate is closing (up to
// MaxPause), for the byte rate, and for a yield when one is due. It
// returns ctx.Err() when ctx is done.
func (t *Throttle) Wait(ctx context.Context, n int) error {
	if err := t.gate(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	var wait time.Duration
	yield := false
	if t.o.BytesPerSec > 0 && n > 0 {
		now := t.o.Clock.Now()
		t.tokens = min(float64(t.o.Burst), t.tokens+now.Sub(t.last).Seconds()*float64(t.o.BytesPerSec))
		t.last = now
		t.tokens -= float64(n)
		if t.tokens < 0 {
			wait = time.Duration(-t.tokens / float64(t.o.BytesPerSec) * float64(time.Second))
		}
		t.st.RateWait += wait
	}
	if t.o.YieldEvery > 0 {
		t.sinceYield += int64(n)
		if t.sinceYield >= t.o.YieldEvery {
			t.sinceYield = 0
			yield = true
			t.st.Yields++
		}
	}
	t.st.Bytes += int64(n)
	t.mu.Unlock()
	if yield {
		wait = max(wait, t.o.Yield)
	}
	return t.o.Clock.Sleep(ctx, wait)
}

func (t *Throttle) gate(ctx context.Context) error {
	g := t.o.Gate
	if g == nil || !g.Closing() {
		return ctx.Err()
	}
	start := t.o.Clock.Now()
	for g.Closing() {
		if t.o.Clock.Now().Sub(start) >= t.o.MaxPause {
			t.mu.Lock()
			t.st.GateTimeout++
			t.mu.Unlock()
			break
		}
		if err := t.o.Clock.Sleep(ctx, t.o.PollGate); err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.st.GatePause += t.o.Clock.Now().Sub(start)
	t.mu.Unlock()
	return ctx.Err()
}

// Writer passes writes to w in chunks, each after Wait.
func (t *Throttle) Writer(ctx context.Context, w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		done := 0
		for len(p) > 0 {
			c := p[:min(len(p), t.o.Chunk)]
			if err := t.Wait(ctx, len(c)); err != nil {
				return done, err
			}
			n, err := w.Write(c)
			done += n
			if err != nil {
				return done, err
			}
			p = p[len(c):]
		}
		return done, nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Reader paces reads from r (slot hashing): each Read after Wait for the
// bytes it asks for, at most Chunk at a time.
func (t *Throttle) Reader(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		p = p[:min(len(p), t.o.Chunk)]
		if err := t.Wait(ctx, len(p)); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Flash returns f with its programs and erases paced: a WriteAt is passed
// on in pieces of Chunk bytes (rounded down to the write unit, at least
// one unit), each after Wait; an Erase waits for the gate and a yield
// slot. Reads are not paced (wrap the reader for hashing).
func (t *Throttle) Flash(ctx context.Context, f hw.Flash) hw.Flash {
	return &flash{Flash: f, t: t, ctx: ctx}
}

type flash struct {
	hw.Flash
	t   *Throttle
	ctx context.Context
}

func (f *flash) WriteAt(p []byte, off int64) (int, error) {
	ws := max(f.Flash.WriteSize(), 1)
	chunk := max(int64(f.t.o.Chunk)/ws*ws, ws)
	done := 0
	for len(p) > 0 {
		c := p[:min(int64(len(p)), chunk)]
		if err := f.t.Wait(f.ctx, len(c)); err != nil {
			return done, err
		}
		n, err := f.Flash.WriteAt(c, off)
		done += n
		if err != nil {
			return done, err
		}
		p, off = p[len(c):], off+int64(len(c))
	}
	return done, nil
}

func (f *flash) Erase(off, n int64) error {
	if err := f.t.Wait(f.ctx, 0); err != nil {
		return err
	}
	return f.Flash.Erase(off, n)
}
