// Package ymodem receives one file over YMODEM (batch, CRC-16), the
// protocol of lrzsz's `sz --ymodem` and of every terminal program a field
// technician may have: the console's way to take a package from a laptop
// over the meter's serial or optical port.
//
// The receiver follows the protocol as lrzsz's sz speaks it:
//
//   - It asks for CRC-16 mode by sending 'C' (never checksum mode), every
//     Options.StartInterval until the sender starts.
//   - Block 0 carries the file name (NUL-terminated) and the size in
//     decimal. The size is required: it bounds the transfer and cuts the
//     padding of the last block. A size above Options.Limit is refused
//     (CAN CAN, ErrTooLarge) before any data block is accepted; nothing
//     has been written then. A name with control characters or invalid
//     UTF-8 (it is shown on the technician's terminal) is ErrHeader.
//   - Until the first data block, silence is answered with 'C' again
//     (never NAK, which a sender may take for checksum mode).
//   - Data blocks of 128 (SOH) and 1024 (STX) bytes may be mixed. A block
//     with a bad CRC or a broken number complement is NAKed after the line
//     has gone quiet. The previous block again (our ACK was lost) is
//     ACKed and not written twice. Any other number is a sequence error
//     and cancels the transfer (ErrSequence): a skipped block cannot be
//     recovered.
//   - The first EOT is NAKed, the second ACKed (lrzsz's sz resends EOT
//     until it gets an ACK); then the size must have been reached.
//   - After the file, the receiver asks for the next block 0: an empty one
//     ends the batch and Receive succeeds. A second file is refused with
//     CAN CAN (ErrSecondFile): one transfer carries one package.
//   - CAN CAN from the sender cancels (ErrCanceled). A single CAN is line
//     noise: ZMODEM's ZDLE is the same byte.
//   - Bytes before a block header are skipped as noise. A plain `sz`
//     (ZMODEM, without --ymodem) first sends "rz\r" and a ZRQINIT header
//     (`**` ZDLE `B00…`); lrzsz's sz reads the receiver's 'C' while it
//     waits for ZRINIT and falls back to YMODEM (lsz.c getnak: WANTCRC), so
//     skipping the header as noise is all that is needed.
//   - Silence (Options.Timeout between blocks, Options.Gap within one)
//     and bad blocks are retried up to Options.MaxErrors times in a row,
//     then the receiver cancels (ErrTimeout, ErrTooManyErrors).
//
// On any error the caller must discard what was written to the io.Writer:
// nothing from a batch that did not end cleanly is to be installed. The
// name in block 0 is reported, never used as a path.
//
// Timeouts need a line whose reads can time out: an io.ReadWriter that
// also has SetReadDeadline(time.Time) error (os.File on a tty, net.Conn)
// or SetReadTimeout(time.Duration) error (go.bug.st/serial). Options.Now is
// the clock the deadlines are computed from. The context is checked
// between reads, so a cancel takes effect within one timeout; on a line
// without either method a read blocks until bytes come.
package ymodem
