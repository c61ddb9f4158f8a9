// Package ubootboot is the A/B/F boot control over the U-Boot environment:
// hw.BootControl for boards whose bootloader is U-Boot, and the boot
// script that implements the other half of the contract
// (testdata/meterupd.cmd, compiled with mkimage).
//
// # Contract
//
// The boot state (hw.BootState) lives in environment variables:
//
//	meterupd_order=B A       slots in the order the script tries them
//	meterupd_left_A=3        attempts left per slot, 0..7 (hw.MaxAttempts);
//	meterupd_left_B=2        a slot without the variable has none
//	upgrade_available=1      the next slot is an unconfirmed trial
//	bootcount=1              boots since the trial was armed
//	bootlimit=3              attempts the trial was given
//
// At every power-on the script takes the first slot of meterupd_order with
// attempts left, decrements its meterupd_left_X (and bootcount++ during a
// trial), saves the environment, and only then boots it with
// meterupd.slot=X appended to the kernel command line. No slot with
// attempts left, a missing order, or a failed save: it boots F, the
// factory fail-safe set. Booted reads meterupd.slot back from
// /proc/cmdline.
//
// Store writes the whole state in one environment write (ubootenv's
// redundant copies make it atomic under power loss). upgrade_available,
// bootcount and bootlimit are derived, not stored separately: the slot the
// script will boot next is a trial unless it is the slot running now, so
// arming a trial (Order=[new, old], Left[new]=n) writes
// upgrade_available=1, bootcount=0, bootlimit=n with the new order, and a
// cut can never leave the new slot selected with counting off. Marking the
// running slot good (its Left restored) writes upgrade_available=0.
// meterupd_order and meterupd_left_X are the truth; the U-Boot variables
// follow them for tools (and U-Boot builds) that read the usual names.
//
// When no environment copy is valid, Load fails with ErrCorrupt and Store
// writes nothing: U-Boot runs its default environment, which has no
// meterupd_order, so the script boots F; writing a fresh environment from
// Linux would drop U-Boot's own variables and might pick an unverified
// slot.
package ubootboot
