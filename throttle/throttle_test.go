package throttle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"meterupd/internal/flashrec"
)

// fakeClock advances only when slept on.
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		c.now = c.now.Add(d)
		c.slept += d
	}
	return nil
}

// closingFor is a gate that reports closing for its first n polls.
type closingFor struct{ n int }

func (g *closingFor) Closing() bool {
	if g.n > 0 {
		g.n--
		return true
	}
	return false
}

func TestRate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		n    int
		want time.Duration // fake time the work takes, ±1 ms
	}{
		{"256KiB/s 1MiB", Options{BytesPerSec: 256 << 10, Burst: 64 << 10, YieldEvery: -1}, 1 << 20, 3750 * time.Millisecond},
		{"1MiB/s 1MiB", Options{BytesPerSec: 1 << 20, Burst: 64 << 10, YieldEvery: -1}, 1 << 20, 937500 * time.Microsecond},
		{"yields only", Options{BytesPerSec: -1, YieldEvery: 64 << 10, Yield: 2 * time.Millisecond}, 1 << 20, 32 * time.Millisecond},
		{"unthrottled", Unthrottled(), 1 << 20, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(1e9, 0)}
			tt.o.Clock = c
			th := New(tt.o)
			var sink bytes.Buffer
			n, err := io.Copy(th.Writer(context.Background(), &sink), bytes.NewReader(make([]byte, tt.n)))
			if err != nil || n != int64(tt.n) {
				t.Fatalf("Copy = %d, %v", n, err)
			}
			if d := c.slept - tt.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("%d bytes took %v of clock, want %v", tt.n, c.slept, tt.want)
			}
			if th.Stats().Bytes != int64(tt.n) {
				t.Errorf("Stats().Bytes = %d, want %d", th.Stats().Bytes, tt.n)
			}
		})
	}
}

func TestGatePauses(t *testing.T) {
	c := &fakeClock{now: time.Unix(1e9, 0)}
	g := &closingFor{n: 1 + 4} // first check, then 4 polls while closing
	th := New(Options{BytesPerSec: -1, YieldEvery: -1, Gate: g, PollGate: 5 * time.Millisecond, Clock: c})
	if err := th.Wait(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	st := th.Stats()
	if st.GatePause != 20*time.Millisecond || st.GateTimeout != 0 {
		t.Errorf("Stats() = %+v, want a 20ms pause", st)
	}
}

func TestGateBoundedByMaxPause(t *testing.T) {
	c := &fakeClock{now: time.Unix(1e9, 0)}
	th := New(Options{BytesPerSec: -1, YieldEvery: -1, Gate: &closingFor{n: 1 << 30}, PollGate: 10 * time.Millisecond, MaxPause: time.Second, Clock: c})
	if err := th.Wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if st := th.Stats(); st.GateTimeout != 1 || st.GatePause != time.Second {
		t.Errorf("Stats() = %+v, want one timeout after 1s", st)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	th := New(Options{Clock: &fakeClock{}})
	if err := th.Wait(ctx, 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(cancelled) = %v", err)
	}
}

func TestFlashChunksOnWriteUnit(t *testing.T) {
	m := flashrec.NewMem(64<<10, 4096, 4096)
	c := &fakeClock{now: time.Unix(1e9, 0)}
	th := New(Options{BytesPerSec: 16 << 10, Burst: 4096, Chunk: 6000, YieldEvery: -1, Clock: c})
	f := th.Flash(context.Background(), m)
	p := bytes.Repeat([]byte{0x5A}, 32<<10)
	if n, err := f.WriteAt(p, 0); err != nil || n != len(p) {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if !bytes.Equal(m.B[:len(p)], p) {
		t.Error("data not written")
	}
	if want := 1750 * time.Millisecond; c.slept != want { // (32K-4K burst)/16K/s
		t.Errorf("paced write took %v, want %v", c.slept, want)
	}
}

func TestLowerPriority(t *testing.T) {
	err := LowerPriority()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("not on Linux")
	}
	if err != nil {
		t.Fatalf("LowerPriority: %v", err)
	}
	checkLowered(t)
}
