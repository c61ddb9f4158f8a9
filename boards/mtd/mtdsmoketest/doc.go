// Package mtdsmoketest is the on-target check of the MTD driver: it runs on a
// real /dev/mtdN (`meterupd selftest --mtd-dev mtdN` on a board, or under QEMU
// with the kernel's nandsim) and on mtdtest's fake chip in unit tests.
//
// Wiring: the partition it is given is destroyed (erased, written, and one
// of its blocks marked bad for good). Run it on a scratch partition of at
// least 6 erase blocks, never on a meter's journal or slots.
package mtdsmoketest
