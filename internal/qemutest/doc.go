// Package qemutest boots a real Linux kernel under QEMU for tests that need
// the real thing: the MTD subsystem with nandsim, run by the static ARM
// meterupd as the guest's init.
//
// Three parts:
//
//   - FetchKernel downloads a Debian armhf kernel package (linux-image-armmp)
//     with apt-get into a private cache directory, with its own sources list,
//     package lists and state, so the machine's apt configuration and
//     architecture list are never changed. A cached kernel is reused without
//     touching the network.
//   - Writer writes a newc cpio archive, the initramfs format the kernel
//     unpacks (Documentation/driver-api/early-userspace/buffer-format.rst):
//     a 110-byte ASCII header "070701" with 13 eight-digit hex fields, the
//     NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes,
//     and a final "TRAILER!!!" entry.
//   - Boot runs qemu-system-arm -M virt (software emulation) with a kernel,
//     an initramfs and a command line, and returns the serial console's
//     output; the guest reports its result there and powers off.
//
// ModuleOrder lists a kernel module and its dependencies in load order, from
// the depends= field of each module's .modinfo section (Debian's kernel
// package ships no modules.dep: depmod makes it at install time).
package qemutest
