# The MTD driver's test against the real kernel (internal/qemutest
# TestRealKernelFlashDriversUnderQEMU) boots Debian's armhf kernel with nandsim under
# qemu-system-arm; apt-get downloads the kernel into .cache/ (git-ignored)
# and dpkg-deb unpacks it. cpio checks our initramfs writer.
DEB_PKGS += qemu-system-arm debian-archive-keyring dpkg
DEB_PKGS += cpio
DEB_PKGS += util-linux
