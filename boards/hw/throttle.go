package hw

import "time"

// IOThrottle is how fast the agent's bulk I/O (delta apply, slot writes
// and hashing, package store writes) may go on a board, so that the
// metrology process always has the CPU and the flash (package throttle
// applies it). Zero values take the throttle package's defaults; a
// negative BytesPerSec or YieldEvery turns that brake off.
type IOThrottle struct {
	BytesPerSec int64
	YieldEvery  int64
	Yield       time.Duration
	// Closing, when set, reports that the metrology process is closing an
	// interval: the agent's I/O pauses meanwhile (bounded).
	Closing func() bool
}

// ThrottleBoard is a board that configures the agent's I/O throttle (an
// optional capability, found by type assertion); ok false: unthrottled.
type ThrottleBoard interface {
	IOThrottle() (t IOThrottle, ok bool)
}
