// Package modemsim simulates a radio module's AT command port on a real
// pseudo-terminal pair: for tests of code that talks to a modem (through
// package modemsim, which ties it to a testing.TB) and for the simulated
// meter, where `meterupd sim modem --simulate` runs it as a program. It is
// never linked into a meter's binary.
//
// Start opens /dev/ptmx, unlocks the pair and runs the module on the
// master side; the code under test opens the slave by path (go.bug.st/serial
// in package modem), exactly as it opens a UART on a meter. The slave is a
// tty without modem-control lines: setting DTR/RTS or reading DCD fails
// with ENOTTY, as on a 3-wire UART.
//
// The module behaves like a real one (modelled on a Quectel BG95 with
// 3GPP TS 27.007 answers):
//
//   - echo on at power-up, switched by ATE0/ATE1, echoed byte by byte;
//   - answers framed as CR LF <line> CR LF, then OK, ERROR or
//     +CME ERROR: <n> in the form AT+CMEE=0/1/2 selects (0 at power-up);
//   - ATI, AT+CGMI, AT+CGMM, AT+CGMR, AT+CGSN, AT+CSQ, AT+CREG?/=n,
//     AT+CEREG?/=n, AT+CMEE=n;
//   - registration URCs when SetRegistration changes the state and
//     AT+CREG=1/2 enabled them; URCs that arrive while a command is being
//     received or answered are held back until after the answer.
//
// A command the module does not know is reported (Options.Report: under
// modemtest it fails the test) and answered with ERROR, as periph's
// conntest playback does. Tests change how an answer
// travels with Once (the next command that matches) or script the dialogue
// in order with Expect (playback: every command must then match): Delay,
// URCMid (a URC inside the answer), Noise, Silent, Lost, Corrupt, CME,
// Reply. Expectations still unmet at Close are reported.
//
// Options.Dialect selects a module of a maker's dialect:
// a Quectel BG95 with its file system and DFOTA, or a u-blox SARA-R410M
// with FOAT and factory settings after an install. Its Path is a symbolic
// link that follows the module across restarts, where the pseudo-terminal
// is closed and a new one opened, as a USB module's port vanishes and comes
// back. Failure modes: CorruptNextUpload, CutUploadAt, FOTAError,
// NeverReady, CutAt and PowerCut (with OnPowerCut); after a power cut the
// module is in the state its manual gives for the step it was in.
package modemsim
