package modemsim

import "meterupd/internal/pty"

// The pty code is shared with the other tests that drive real serial-line
// programs (internal/pty).
var (
	openPTY = pty.Open
	closeFD = pty.CloseFD
)
