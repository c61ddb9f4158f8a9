// Package modem drives a cellular (or RF) radio module over its AT command
// port: a UART opened with go.bug.st/serial. The agent uses it for the
// "radio links" health check, for `meterupd status` and `meterupd modem`,
// and to update the module's own firmware.
//
// # The dialogue
//
// AT commands (3GPP TS 27.007, ITU-T V.250) are lines ending in CR. The
// module answers with lines framed by CR LF: zero or more information lines,
// then one final result: OK, ERROR, "+CME ERROR: <n>" or "+CMS ERROR: <n>"
// (numeric after AT+CMEE=1, text after AT+CMEE=2). With echo on (ATE1, the
// power-up default of most modules) the command comes back first.
//
// At any moment the module may also send unsolicited result codes (URCs):
// "+CREG: 5" when the registration changes, "RING", "RDY" after a restart.
// They arrive between commands and in the middle of an answer. The driver
// reads the port on one goroutine and routes each line:
//
//   - the echo of the command in flight is dropped;
//   - a final result ends the command in flight;
//   - a command that expects "+XXX:" lines (AT+CSQ → "+CSQ:") owns those;
//     a free-text answer (ATI, AT+CGMR) owns every line that does not look
//     like a result code of another command;
//   - everything else goes to Config.OnURC.
//
// +CREG: is both the answer to AT+CREG? and a URC; the two forms differ in
// the leading <n> of the answer (see Reg), and ParseReg tells them apart.
//
// Line noise is tolerated: bytes outside printable ASCII are dropped, as is
// a line longer than MaxLine (see Splitter). A command that times out is
// abandoned; the module may still answer it later, so the next command is
// preceded by a resynchronisation ("AT" until OK, then a quiet period in
// which no stray OK may arrive).
//
// Every command is bounded by Config.Timeout and by its context. Errors:
// ErrTimeout (transient), ErrCommandFailed (wrapped by *CMEError), ErrSyntax
// (wrapped by *SyntaxError, which names the offset), ErrClosed.
//
// Modem-control lines (DTR, RTS, DCD…) are optional: on a pseudo-terminal
// or a 3-wire UART the ioctls fail with ENOTTY, which Open logs and
// ignores, and Lines reports ErrNoControlLines.
//
// Open returns a Modem that keeps the port; Radio opens it per call, for
// board files, and is the board's hw.Radio.
//
// The module's own firmware update (FOTA) is not here yet: each module
// family has its own commands, and they come with the modem firmware item.
package modem
