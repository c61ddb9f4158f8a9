# U-Boot environment and boot control (boards/ubootenv, boards/ubootboot):
# fw_printenv/fw_setenv and mkenvimage for byte compatibility, mkimage to
# compile the boot script, and real U-Boot under qemu-system-arm -M virt.
DEB_PKGS += libubootenv-tool u-boot-tools qemu-system-arm u-boot-qemu
