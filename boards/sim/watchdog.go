package sim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"meterupd/boards/hw"
	"meterupd/clock"
)

// ErrWatchdogReset: the watchdog reset the node; the software that held
// it is gone (a feed after the reset fails with it).
var ErrWatchdogReset = errors.New("sim: the watchdog reset the node")

// DefaultWatchdogTimeout is the sim watchdog's countdown until SetTimeout.
const DefaultWatchdogTimeout = 60 * time.Second

// Watchdog models a hardware watchdog on the sim board: it starts counting
// when opened; unless fed within its timeout it resets the node, which
// runs the simulated bootloader (PowerOn: the trial's attempts count
// down) exactly as a power cycle does. After a reset it is stopped, as
// the hardware's is until the new software opens it; Close stops it (the
// magic close). Its time is a clock.Clock, so tests move it by hand.
type Watchdog struct {
	b   *Board
	clk clock.Clock

	mu      sync.Mutex
	timeout time.Duration
	timer   clock.Timer
	reset   bool
	closed  bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	resets  chan error
}

var _ hw.Watchdog = (*Watchdog)(nil)

// Watchdog opens the board's watchdog on the system clock: the
// hw.WatchdogBoard capability.
func (b *Board) Watchdog() (hw.Watchdog, error) { return NewWatchdog(b, clock.Real{}), nil }

// NewWatchdog opens a watchdog on b counting on clk; it starts at once
// with DefaultWatchdogTimeout.
func NewWatchdog(b *Board, clk clock.Clock) *Watchdog {
	w := &Watchdog{b: b, clk: clk, timeout: DefaultWatchdogTimeout,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), resets: make(chan error, 1)}
	w.timer = clk.NewTimer(w.timeout)
	go w.run()
	return w
}

// Resets delivers the outcome of the simulated bootloader (PowerOn's
// error, nil when it booted) each time the watchdog resets the node.
func (w *Watchdog) Resets() <-chan error { return w.resets }

func (w *Watchdog) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		t := w.timer
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-w.kick:
			continue // fed: wait on the new timer
		case <-t.C():
		}
		w.mu.Lock()
		if w.timer != t {
			w.mu.Unlock()
			continue // fed just as the old countdown ran out
		}
		w.reset = true
		w.mu.Unlock()
		_, err := w.b.PowerOn()
		w.b.log.Warn("watchdog reset")
		w.resets <- err
		return
	}
}

// Feed restarts the countdown.
func (w *Watchdog) Feed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.restart()
}

func (w *Watchdog) restart() error {
	switch {
	case w.reset:
		return ErrWatchdogReset
	case w.closed:
		return fmt.Errorf("sim: watchdog closed")
	}
	w.timer.Stop()
	w.timer = w.clk.NewTimer(w.timeout)
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// SetTimeout sets the countdown and restarts it, as the Linux API does.
func (w *Watchdog) SetTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("sim: watchdog timeout %v", d)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timeout = d
	return w.restart()
}

// Timeout is the countdown in force.
func (w *Watchdog) Timeout() (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timeout, nil
}

// Close stops the watchdog (the magic close) and waits for its goroutine.
func (w *Watchdog) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("sim: watchdog closed")
	}
	w.closed = true
	w.timer.Stop()
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return nil
}
