package clocktest

import (
	"sort"
	"sync"
	"time"

	"meterupd/clock"
)

// Clock is a fake clock. It is safe for concurrent use: the code under test
// may wait on a timer in one goroutine while the test advances the clock
// in another.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	// added is signalled whenever a timer is created, so a test can wait
	// until the code under test is waiting (WaitTimers).
	added chan struct{}
}

var _ clock.Clock = (*Clock)(nil)

// New returns a clock standing at start.
func New(start time.Time) *Clock {
	return &Clock{now: start, added: make(chan struct{}, 1)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock is advanced d past
// now (at once when d <= 0).
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

// Advance moves the clock d forward and fires the timers it passes.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.fired = true
		t.ch <- t.at
	}
	c.timers = kept
}

// Pending is the number of timers waiting to fire.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers blocks until at least n timers are pending, or until the
// real-time limit passes (it reports false then): a test calls it before
// Advance so that the code under test has set its deadline.
func (c *Clock) WaitTimers(n int, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if c.Pending() >= n {
			return true
		}
		select {
		case <-c.added:
		case <-deadline.C:
			return c.Pending() >= n
		case <-time.After(time.Millisecond):
		}
	}
}

type timer struct {
	c     *Clock
	at    time.Time
	ch    chan time.Time
	fired bool
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired {
		return false
	}
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			t.fired = true
			return true
		}
	}
	return false
}
