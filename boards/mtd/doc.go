// Package mtd drives raw flash through the Linux MTD character devices
// (/dev/mtdN) and implements hw.Flash on one partition.
//
// # Domain
//
// The kernel's MTD layer exposes every flash partition as a character device.
// read/pread and write/pwrite move data (the kernel applies the NAND's ECC in
// the out-of-band area; this package never writes OOB itself), and ioctls do
// the rest: MEMGETINFO reports the chip type and geometry, MEMERASE64 erases
// whole erase blocks, MEMGETBADBLOCK and MEMSETBADBLOCK read and set the
// bad-block marker that lives in a block's OOB (or the on-flash bad block
// table). Partitions are found by name in /proc/mtd:
//
//	dev:    size   erasesize  name
//	mtd0: 00020000 00020000 "journal"
//
// # Rules kept
//
//   - NAND is programmed in whole pages (WriteSize), each page once after an
//     erase; NOR programming may only clear bits. The driver reads the range
//     before programming and refuses (hw.ErrNotErased) a write the chip would
//     corrupt, before anything is written.
//   - Offsets of WriteAt are multiples of WriteSize, of Erase multiples of
//     EraseSize; a misaligned call wraps hw.ErrAlignment and changes nothing.
//   - Bad blocks are skipped: logical erase block i of the partition is the
//     i-th good physical block (the skip-bad-block scheme of nandwrite and
//     U-Boot's "nand write.e"). The logical size is what the board file says
//     (WithSize) and never changes; a partition without enough good blocks to
//     hold it fails Open with ErrTooFewGoodBlocks, before the first write.
//   - A block that fails to erase or program is marked bad and the mapping is
//     recomputed; the call fails with an error wrapping hw.ErrBadBlock. Later
//     logical blocks then move one physical block on, so the caller (the slot
//     writer, which writes a slot once, in order) erases and rewrites from
//     the failed logical block on.
//
// The syscalls sit behind the Device interface: the Linux implementation is
// in mtd_linux.go, other systems get errors.ErrUnsupported, and package
// mtdtest provides an in-memory NAND that keeps the real chip's rules, so the
// driver's tests run anywhere.
package mtd
