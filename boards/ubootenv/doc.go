// Package ubootenv reads and writes the U-Boot environment, byte for byte
// as U-Boot's saveenv and Debian's fw_printenv/fw_setenv (libubootenv) do.
//
// # Format
//
// One stored copy of the environment is a fixed-size area
// (CONFIG_ENV_SIZE):
//
//	offset 0  CRC32 (IEEE, little endian) of the variable area
//	offset 4  flag byte                  (only with two redundant copies)
//	then      "name=value\0" ... "\0"     variable area, zero padded
//
// The CRC covers the whole variable area, padding included. Variables are
// written sorted by name, as U-Boot's export does; on reading, the first
// empty entry (or the end of the area) ends the list, an entry without '='
// is skipped, and a later duplicate wins. An empty name makes U-Boot drop
// the whole environment, so it is a *FormatError here too. Values are raw
// bytes: like libubootenv, and unlike U-Boot's own export, backslashes are
// not escaped, so avoid them in values both sides must agree on.
//
// # Redundant copies
//
// With two copies (two lines in fw_env.config) a save writes the copy
// that is not current, so a power cut at any point leaves the old copy or
// the new one valid. Which valid copy is current depends on the flag
// style, which U-Boot fixes per storage driver:
//
//   - Counter (NAND, eMMC, SPI flash, files): the flag is a serial
//     incremented at each save; the higher wins, 0 beats 255 (wrap), equal
//     picks the first copy (env_check_redund).
//   - ActiveObsolete (parallel NOR, env/flash.c): the new copy is written
//     with flag 1 (active), then the old copy's flag is programmed to 0
//     (obsolete) in place; 1 beats 0; an erased 0xFF flag beats a
//     programmed one; two equal flags, or a pair damaged by a bit flip,
//     pick the first copy. libubootenv differs only on pairs a clean
//     writer never leaves (0xFF,0xFF and bit flips).
//
// Invariants kept by Save, for a power cut at any byte of any flash
// operation: the current copy is never touched until the new one has been
// written and read back; before a NOR copy is erased its CRC is cleared,
// so a torn erase cannot revive an older copy with an erased 0xFF flag;
// a torn program leaves a CRC mismatch. When no copy is valid, Load
// reports ErrNoValidCopy and Update writes nothing: U-Boot then runs with
// its built-in default environment, and writing a fresh one from Linux
// would drop U-Boot's own variables and could select an unverified slot.
//
// # Configuration
//
// ParseConfig reads the fw_env.config format (device, offset, size,
// optional sector size and count; see Location). Files and block devices
// are accessed in place and always use the Counter style, as libubootenv
// does (eMMC boot partitions are unlocked through sysfs force_ro for the
// write); flash partitions (NewFlash, or /dev/mtd* through WithFlashOpener)
// choose the style by write unit: 1 byte is NOR.
package ubootenv
