// Package blockdev drives eMMC (or SD, or any block device) partitions as
// hw.Flash, so boards with managed flash run the same agent code as boards
// with raw NAND.
//
// # Domain
//
// An eMMC hides its NAND behind a controller that does wear levelling, bad
// block management and ECC; Linux shows it as /dev/mmcblk0 with partitions
// /dev/mmcblk0pN. A partition is found by its GPT name (PARTNAME= in
// /sys/class/block/<dev>/uevent):
//
//	MAJOR=179
//	MINOR=3
//	DEVNAME=mmcblk0p3
//	DEVTYPE=partition
//	PARTN=3
//	PARTNAME=rootfs_a
//
// # Rules kept
//
// A block device can overwrite in place, but the agent's code is written to
// the flash contract of package hw, and keeping that contract here means the
// journal and slot code behave the same on every board:
//
//   - Erase writes 0xFF over whole erase units (EraseSize, by default 512
//     KiB, a common eMMC erase group; WithEraseSize changes it).
//   - WriteAt takes whole logical sectors (WriteSize, 512 bytes unless the
//     device reports another) and, like NOR, may only clear bits: the range
//     is read first and a write that would set a bit fails with
//     hw.ErrNotErased before anything is written.
//   - The device is opened O_SYNC, so a WriteAt that returned has reached
//     the device, as a raw flash program has.
//
// The Size is the partition's size rounded down to whole erase units.
package blockdev
