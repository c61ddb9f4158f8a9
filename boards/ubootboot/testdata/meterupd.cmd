# meterupd A/B/F boot chooser, a U-Boot hush script.
#
# Compile:  mkimage -A arm -O linux -T script -C none -d meterupd.cmd meterupd.scr
# Run from the board's bootcmd, e.g.  bootcmd=load mmc 0 ${scriptaddr} meterupd.scr; source ${scriptaddr}
#
# Environment contract (meterupd writes it in one env write; docs/uboot.md):
#   meterupd_order      slots to try, first first, e.g. "B A"
#   meterupd_left_A/B/F attempts left for that slot, 0..7
#   upgrade_available   1 while the first slot is an unconfirmed trial
#   bootcount           boots since the trial was armed (counted here)
#   bootlimit           attempts the trial was given
#   meterupd_boot_A/B/F board command that boots that slot; returns only on failure
#   meterupd_save       optional: command that saves the env (default: saveenv)
#
# The first slot of meterupd_order with attempts left is chosen; its counter
# is decremented and saved BEFORE it is booted, so a slot that never comes
# up runs out of attempts. If the save fails, or no slot has attempts left,
# or the order is missing (U-Boot fell back to its default environment), F
# is booted: the factory fail-safe set, always bootable.
# The kernel learns the slot from "meterupd.slot=X" on its command line.

meterupd_slot=
for s in ${meterupd_order}; do
	if test -z "${meterupd_slot}"; then
		if test "${s}" = A && test -n "${meterupd_left_A}" && test "${meterupd_left_A}" -gt 0; then
			setexpr meterupd_left_A "${meterupd_left_A}" - 1
			meterupd_slot=A
		fi
		if test "${s}" = B && test -n "${meterupd_left_B}" && test "${meterupd_left_B}" -gt 0; then
			setexpr meterupd_left_B "${meterupd_left_B}" - 1
			meterupd_slot=B
		fi
		if test "${s}" = F && test -n "${meterupd_left_F}" && test "${meterupd_left_F}" -gt 0; then
			setexpr meterupd_left_F "${meterupd_left_F}" - 1
			meterupd_slot=F
		fi
	fi
done

if test -z "${meterupd_slot}"; then
	echo "meterupd: no slot of order (${meterupd_order}) has attempts left"
	meterupd_slot=F
else
	if test "${upgrade_available}" = 1; then
		if test -z "${bootcount}"; then
			setenv bootcount 0
		fi
		if test -n "${bootlimit}" && test "${bootcount}" -le "${bootlimit}"; then
			setexpr bootcount "${bootcount}" + 1
		fi
	fi
	echo "meterupd: trying ${meterupd_slot} (left A=${meterupd_left_A} B=${meterupd_left_B} F=${meterupd_left_F}, bootcount=${bootcount})"
	meterupd_saved=0
	if test -n "${meterupd_save}"; then
		if run meterupd_save; then
			meterupd_saved=1
		fi
	else
		if saveenv; then
			meterupd_saved=1
		fi
	fi
	if test "${meterupd_saved}" != 1; then
		echo "meterupd: cannot save the attempt counter"
		meterupd_slot=F
	fi
fi

echo "meterupd: booting ${meterupd_slot}"
setenv bootargs "${bootargs} meterupd.slot=${meterupd_slot}"
run meterupd_boot_${meterupd_slot}
echo "meterupd: slot ${meterupd_slot} did not start"
reset
