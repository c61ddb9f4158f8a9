package hw

import "time"

// Watchdog is a hardware watchdog timer: unless fed within its timeout it
// resets the node, which runs the bootloader as any power-on does (the
// trial's attempts count down). It is how a node whose software hangs —
// a new set that boots but never reaches its verdict — gets back without
// a person.
//
// A board offers one by the optional WatchdogBoard capability. Under
// systemd the service manager owns the hardware watchdog; the daemon then
// feeds the service watchdog through the same interface.
type Watchdog interface {
	// Feed restarts the countdown.
	Feed() error
	// SetTimeout sets the countdown. A device may round it (to whole
	// seconds, or to what its counter holds); Timeout tells what it took.
	SetTimeout(d time.Duration) error
	// Timeout is the countdown in force.
	Timeout() (time.Duration, error)
	// Close stops the watchdog where the device allows it (Linux: the
	// magic close, 'V' written before closing); a device built with
	// nowayout keeps counting and the node resets unless it is fed again.
	Close() error
}

// WatchdogBoard is a board with a hardware watchdog (an optional
// capability, found by type assertion). A board that may or may not have
// one returns an error wrapping ErrUnsupported when it has none.
type WatchdogBoard interface {
	Watchdog() (Watchdog, error)
}
