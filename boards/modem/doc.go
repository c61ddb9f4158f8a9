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
// board files.
//
// # Firmware transfer
//
// ATUpdater implements FirmwareUpdater for a module that takes its firmware
// over the AT port. The protocol, modelled on u-blox AT+UFWUPD and
// Quectel's AT+QFOTADL but with the checks a meter needs, is:
//
//	AT+FWUPD=<size>,"<id>"   start, or resume the session with this id
//	  +FWUPD: <offset>,<max chunk>       the module has <offset> bytes
//	AT+FWUPD?                where does the session stand
//	  +FWUPD: <size>,<offset>            (0,0: no session)
//	AT+FWDATA=<offset>,<len>,"<crc32>"   send one chunk
//	  > (prompt)             the host sends exactly <len> raw bytes
//	  +FWDATA: <new offset>              chunk stored
//	  +CME ERROR: 801        checksum mismatch: send it again
//	  +CME ERROR: 802        not at the session's offset: ask AT+FWUPD?
//	AT+FWACT="<crc32>"       verify the whole image and switch to it
//	  OK, then the module restarts and sends RDY
//	  +CME ERROR: 801 / 803  image checksum wrong / image incomplete
//
// After the prompt the module reads exactly <len> bytes; when none come for
// a second it abandons the chunk (+CME ERROR: 100) and returns to command
// mode, so a host that gave up does not leave it stuck in the data phase.
// CRCs are IEEE CRC-32 in 8 lowercase hex digits. The session id is the
// whole image's CRC, so a transfer that broke off (power cut, lost link)
// resumes at the module's offset only for the same image; an empty id
// always starts afresh. The module keeps chunks only after their CRC
// checked out, so its offset is always a prefix of the image. Chunks are
// sent in order, each acknowledged before the next; a chunk whose answer is
// lost is settled by asking AT+FWUPD? (the module either has it or not).
// Nothing is activated until AT+FWACT has checked the whole image.
package modem
