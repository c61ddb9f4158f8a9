// Package pty opens pseudo-terminal pairs for tests that talk to real
// serial-line programs (a simulated modem's driver, lrzsz's sz) over a
// real tty rather than a pipe: the kernel's line discipline, raw mode and
// read deadlines behave as on a UART.
//
// The master side is an *os.File in non-blocking mode, so read deadlines
// work on it. The slave is held open in raw mode for the life of the pair,
// so the master never reads EIO while the program on the slave side has it
// closed.
package pty
