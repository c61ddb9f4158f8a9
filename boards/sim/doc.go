// Package sim is the simulated meter: a board whose flash partitions are
// files in a state directory, with the rules of real flash, a simulated
// bootloader, and fault injection for the power-cut suite.
//
// # State directory
//
//	board.json    format version and Geometry (written last by Create)
//	A.bin B.bin   the updatable slots
//	F.bin         the factory slot (opened read-only)
//	journal.bin   the journal partition (hw.PartJournal)
//	common.bin    common data (hw.PartCommon)
//	bootctl.bin   boot control: two erase blocks, one boot state copy each
//	power         "mains" or "battery"; absent means mains (not flash)
//	run/booted    the slot the bootloader started (the sim's /proc/cmdline:
//	              RAM, a plain file, rewritten at every PowerOn)
//
// Partition files hold the flash bytes as they are, erased bytes 0xFF, so
// `cmp` and `hexdump` work on them. They are not fsynced: the simulated
// power cut is a fault of the board, not of the host.
//
// # Flash rules
//
// Every partition is an hw.Flash: Erase sets 0xFF and takes offsets and
// lengths in erase blocks; WriteAt takes them in write units and may only
// clear bits (a 1 over a 0 fails with hw.ErrNotErased and changes nothing);
// misaligned calls fail with hw.ErrAlignment, calls past the end with
// ErrOutOfRange; ReadAt follows io.ReaderAt. F refuses WriteAt and Erase with
// hw.ErrReadOnly, and Board.ForbiddenWrites counts the attempts. The program
// rule is the NOR one (bits only go 1→0) for every write size; a NAND page's
// write-once rule is not modelled beyond it.
//
// Each Erase call and each WriteAt call that reaches the flash is one
// operation (Board.Ops), numbered from 1 after Open. Faults act on these
// numbers: a power cut before, after or in the middle of operation k (torn
// program: a random prefix plus one half-cleared byte; torn erase: the
// blocks before a random tear block erased, the tear block randomly half
// erased), an I/O error once or from k on, bad blocks (failing, or silently
// doing nothing), blocks whose reads fail, and bits that read flipped. After a cut the board is dead: flash operations fail with
// ErrPowerCut; reads still work. The harness "reboots" by opening the
// directory again and calling PowerOn.
//
// # Boot control
//
// The bootctl partition holds the hw.BootState twice, one 24-byte record
// (magic, version, sequence number, order, attempts, CRC-32 over every
// byte; layout in bootctl.go) at the start of each erase block. Store erases
// and programs the older copy with the next sequence number, so after a cut
// at any point the newest valid copy is the old or the new state, never a
// mix. Load returns the newest valid copy; with none valid it fails with
// ErrBootCorrupt.
//
// PowerOn is the bootloader: the first slot in Order with attempts left has
// them decremented and stored before the jump; a slot that does not come up
// (image marked MarkUnbootable, no sim image header, image CRC mismatch)
// costs the attempt and the loop goes on; with no attempts left or no valid
// boot state it boots F, which is always bootable, without writing. It never
// loops more than 3*hw.MaxAttempts times.
//
// # Images
//
// Image makes deterministic test images: a 4 KiB text header (ImageHeader:
// version, size, CRC-32 of the body, marks) and a pseudo-random body derived
// from one common base with edits seeded by the version, so versions differ
// like releases do. MarkUnhealthy in the header makes Readings (the
// hw.Metrology check) fail once that slot has booted.
//
// The board registers itself as "sim" in the boards registry; opened
// through it, a node that has never been powered on is powered on first.
package sim
