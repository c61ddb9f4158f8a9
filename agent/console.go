package agent

// ConsoleGuard is the technician console's login guard as the journal
// keeps it (issue 12), so that a reboot or a daemon restart does not reset
// it: the failed logins in a row, how many lockouts they have led to since
// the last good login, and the end of the current lockout.
type ConsoleGuard struct {
	// Fails counts failed logins in a row since the last good login or
	// the last lockout.
	Fails int `cbor:"fails,omitempty"`
	// Lockouts counts lockouts since the last good login: it picks the
	// next lockout's length.
	Lockouts int `cbor:"locks,omitempty"`
	// Until is the end of the current lockout, Unix seconds (0: none).
	Until int64 `cbor:"until,omitempty"`
}

// SetConsole commits g as the console's login guard (nil clears it). It
// changes nothing else in the record: journal first, like every state
// change.
func (a *Agent) SetConsole(g *ConsoleGuard) error {
	r := a.rec.clone()
	if g != nil {
		gg := *g
		if gg == (ConsoleGuard{}) {
			r.Console = nil
		} else {
			r.Console = &gg
		}
	} else {
		r.Console = nil
	}
	return a.commit(r)
}
