package hw

// ClockSource is a board that knows whether its wall clock can be trusted
// (an optional capability, found by type assertion): an RTC with a valid
// flag (its backup supply never failed since it was set), or a time set
// since boot from a trusted source (NTP, the head-end). A board without it
// has no trusted clock: the agent then never activates at a time, only on
// a command. The agent adds its own rule on top: a time earlier than its
// own build is never valid, whatever the board says.
type ClockSource interface {
	// ClockValid reports whether the wall clock is valid now; an error
	// (the flag cannot be read) counts as not valid.
	ClockValid() (bool, error)
}
