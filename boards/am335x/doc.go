// Package am335x is the reference meter board file: a TI AM335x (ARMv7)
// meter with 256 MiB of SLC NAND behind the Linux MTD layer, U-Boot with its
// environment in two redundant NAND copies, and a cellular modem on UART1.
// It registers itself as "am335x-nand".
//
// # What it composes
//
//   - Flash: boards/mtd on the partitions of Layout, found by name in
//     /proc/mtd (the kernel gets them from the device tree's partitions
//     node or mtdparts=). Each partition's driver size is its Logical size;
//     the blocks between Logical and Size are the bad-block reserve, so a
//     slot keeps its size while blocks wear out.
//   - Slots: a system set is a kernel and a root file system. Slot(A) is
//     kernel_a followed by rootfs_a, as one flash: a slot image is the
//     kernel partition's Logical bytes (the kernel, padded with 0xFF) and
//     then the root file system. F is the failsafe partition, read-only.
//   - Boot control: boards/ubootboot over boards/ubootenv, with the two
//     environment copies of Env (counter flag style, as on NAND).
//   - Power: /sys/class/power_supply/<MainsSupply>/online (1: mains).
//   - Modem: the AT port on ModemPort, opened on demand (Modem).
//
// # Invariants (checked by the tests)
//
// Layout is sorted by offset, partitions do not overlap, offsets, sizes and
// logical sizes are whole erase blocks and fit the chip, and every row says
// where its numbers come from.
package am335x
