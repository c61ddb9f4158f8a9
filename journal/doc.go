// Package journal records the agent's state power-safely on a small flash
// partition (hw.PartJournal): the slots' states and the update's progress.
//
// # Domain
//
// The state is small (well under 2 KiB) and every record is a full snapshot
// of it, so only the newest valid record matters. Older records stay on
// flash, readable with Records (`meterupd journal` prints that history), until
// their area is erased. The package knows only an hw.Flash: erase before
// program, programs only clear bits, erase-block and write-unit alignment.
//
// # Format
//
// The partition is split into areas: erase blocks, or groups of consecutive
// erase blocks of at least MinArea bytes when blocks are small. The grouping
// depends on the flash geometry only (never on options), so every version of
// the agent finds the same areas; blocks left over past the last whole area
// are unused. There are at least two areas.
//
// An area is a log of records from its first byte, ended by erased flash
// (a header of 0xFF bytes) or by the area's end. A record is a 32-byte header,
// the CBOR payload, and zero padding to the flash's write unit:
//
//	0  magic "MUJR"
//	4  format version, u16 little endian (Version)
//	6  header size, u16 (32)
//	8  sequence number, u64
//	16 payload length, u32
//	20 record length, u32: header + payload + padding
//	24 CRC-32C of payload and padding
//	28 CRC-32C of header bytes 0..28
//
// Every byte of a record is covered by a CRC. The magic is checked before any
// other field, and the header CRC before the lengths are used, so erased
// flash or a torn header is never read as a length. The first 32 bytes keep
// this layout in every future version: a record with a valid header and a
// higher version makes Open fail with ErrNewerVersion.
//
// Payloads are CBOR (core deterministic encoding) and are decoded with
// explicit limits: nesting 16, 1024 array elements, 1024 map pairs, no
// duplicate map keys, no indefinite lengths, no tags, no trailing bytes, and
// Options.MaxRecord bytes (default 4 KiB, hard limit MaxRecordLimit).
//
// # Invariants
//
//   - A commit is atomic. The newest record is the valid record with the
//     highest sequence number, in any area. A commit programs one new record
//     in one WriteAt and reads it back; a power cut before, during or after
//     it leaves the old record or the new one as the newest, never a mix and
//     never nothing.
//   - Appends only. A commit appends after the newest record while its area
//     has room and its tail is clean (erased). Otherwise it moves to the next
//     area in turn, erases it, and writes there: an erase happens only when
//     an area is full or its tail is not trusted. The area that holds the
//     newest record is never erased, so a switch cannot lose it.
//   - Nothing is programmed over bytes that are not erased: after a torn or
//     invalid record, or non-erased bytes after the end of the log, the rest
//     of that area is not trusted and the next commit moves on. The target
//     range is checked to read erased before each program.
//   - A program or erase error, or a read-back mismatch (a bad block, a
//     silent program failure), makes the commit try the next areas, once
//     each; when none works, Commit fails with ErrNoArea and the previous
//     record is still the newest in memory. A record that failed its
//     read-back may still read valid after a reboot, exactly as after a power
//     cut between its program and Commit's return; its sequence number is
//     never reused, so no two different records share one.
//   - Open never writes. An erased partition is ErrEmpty, data without our
//     magic is ErrForeign, our magic without a valid record is ErrCorrupt,
//     a newer format is ErrNewerVersion, a newest record larger than
//     Options.MaxRecord is ErrTooLarge (an older, larger record is skipped):
//     each is reported and the partition
//     is left byte-identical. Only Format, used when provisioning a node,
//     writes a first record; an interrupted Format is detected by Open
//     (ErrEmpty, ErrCorrupt or ErrForeign) and is simply run again.
package journal
