# The flash drivers' test against the real kernel (internal/qemutest
# TestRealKernelFlashDriversUnderQEMU) boots Debian's armhf kernel with
# nandsim and a virtio disk under qemu-system-arm; apt-get downloads the
# kernel into .cache/ (git-ignored) and dpkg-deb unpacks it. cpio checks our
# initramfs writer, partx (util-linux) our GPT writer.
DEB_PKGS += qemu-system-arm debian-archive-keyring dpkg cpio util-linux
