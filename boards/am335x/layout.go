package am335x

import "meterupd/boards/hw"

// Name is the board's registered name (--board am335x-nand).
const Name = "am335x-nand"

// Compatible is the device-tree compatible string of the reference meter.
// A meter maker's board file lists its own (its .dts's first compatible).
var Compatible = []string{"meterupd,am335x-ref-meter"}

// NAND geometry: Micron MT29F2G08ABAEAWP, 2 Gbit SLC, x8 (the NAND of TI's
// AM335x EVM and most AM335x industrial designs): 2048-byte pages with 64
// OOB bytes, 64 pages per 128 KiB block, 2048 blocks; at least 2008 blocks
// are good over the part's life (datasheet, "NVB"), so about 2 % of any
// range may go bad.
const (
	ChipSize  = 256 << 20
	EraseSize = 128 << 10
	PageSize  = 2048
)

// Part is one MTD partition of the NAND.
type Part struct {
	Name   string
	Offset int64 // on the chip
	Size   int64 // as in /proc/mtd
	// Logical is the size the driver exposes; Size-Logical blocks are the
	// bad-block reserve. 0: the agent does not open it.
	Logical int64
	Source  string // where the numbers come from
}

// Layout is the NAND partition table, sorted by offset. The first eight
// rows are TI's (the bootloader's ROM code looks for the SPL copies there);
// the rest is this reference meter's.
var Layout = []Part{
	{"NAND.SPL", 0x0000000, 0x20000, 0, "TI am335x-evm.dts nand partitions; ROM code reads SPL at block 0"},
	{"NAND.SPL.backup1", 0x0020000, 0x20000, 0, "TI am335x-evm.dts; ROM code tries blocks 1-3 when block 0 fails"},
	{"NAND.SPL.backup2", 0x0040000, 0x20000, 0, "TI am335x-evm.dts"},
	{"NAND.SPL.backup3", 0x0060000, 0x20000, 0, "TI am335x-evm.dts"},
	{"NAND.u-boot-spl-os", 0x0080000, 0x40000, 0, "TI am335x-evm.dts (falcon mode args)"},
	{"NAND.u-boot", 0x00C0000, 0x100000, 0, "TI am335x-evm.dts; CONFIG_SYS_NAND_U_BOOT_OFFS=0xc0000"},
	{"NAND.u-boot-env", 0x01C0000, 0x20000, 0x20000, "TI am335x-evm.dts; CONFIG_ENV_OFFSET=0x1c0000"},
	{"NAND.u-boot-env.backup1", 0x01E0000, 0x20000, 0x20000, "TI am335x-evm.dts; CONFIG_ENV_OFFSET_REDUND=0x1e0000"},
	{hw.PartJournal, 0x0200000, 0x100000, 0x80000, "reference meter: 4 blocks of journal areas + 4 spare (journal needs >= 2)"},
	{hw.PartCommon, 0x0300000, 0x1000000, 0xF00000, "reference meter: 15 MiB config, calibration, readings + 1 MiB reserve"},
	{"kernel_a", 0x1300000, 0x800000, 0x780000, "reference meter: 7.5 MiB zImage+dtb + 4 blocks reserve"},
	{"rootfs_a", 0x1B00000, 0x4000000, 0x3E00000, "reference meter: 62 MiB squashfs + 16 blocks (~3 %) reserve"},
	{"kernel_b", 0x5B00000, 0x800000, 0x780000, "as kernel_a"},
	{"rootfs_b", 0x6300000, 0x4000000, 0x3E00000, "as rootfs_a"},
	{"failsafe", 0xA300000, 0x4800000, 0x4600000, "reference meter: factory kernel+rootfs, 70 MiB + 16 blocks reserve"},
}

// SlotParts maps each system set to its partitions. F is one partition
// that holds the factory kernel and root file system.
var SlotParts = map[hw.Slot][]string{
	hw.SlotA: {"kernel_a", "rootfs_a"},
	hw.SlotB: {"kernel_b", "rootfs_b"},
	hw.SlotF: {"failsafe"},
}

// EnvCopy is one copy of the U-Boot environment (a line of fw_env.config,
// by partition name instead of /dev/mtdN).
type EnvCopy struct {
	Partition string
	Offset    int64
	Size      int64 // CONFIG_ENV_SIZE
	Source    string
}

// Env lists the two redundant environment copies, in U-Boot's order.
var Env = []EnvCopy{
	{"NAND.u-boot-env", 0, 0x20000, "one erase block per copy (CONFIG_ENV_SIZE=0x20000 assumed: set your U-Boot's value)"},
	{"NAND.u-boot-env.backup1", 0, 0x20000, "CONFIG_ENV_OFFSET_REDUND copy"},
}

// The modem's AT port: UART1 of the AM335x (omap-serial names it ttyO1,
// 8250_omap ttyS1; Debian's armmp kernels use 8250_omap).
const (
	ModemPort = "/dev/ttyS1"
	ModemBaud = 115200
)

// MainsSupply is the power_supply device that reports mains presence
// (/sys/class/power_supply/ac/online, e.g. a gpio-charger node in the .dts).
const MainsSupply = "ac"
