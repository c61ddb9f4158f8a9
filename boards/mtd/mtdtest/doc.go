// Package mtdtest is an in-memory flash chip behind the mtd.Device seam, with
// the rules of the real parts as the Linux MTD layer presents them:
//
//   - NAND: pages are programmed whole (an unaligned pwrite is EINVAL, as
//     nand_do_write_ops refuses it) and once per erase (a second program of a
//     page fails with ErrProgrammedTwice: on a real chip it corrupts the
//     page's ECC); erasing a block marked bad is EIO (nand_erase_nand); the
//     bad-block marker lives in the block's first page OOB and survives
//     erases; a block can be set to wear out, failing its next erase or
//     program with EIO, as a worn block does.
//   - NOR: any byte is programmable, and programming only clears bits.
//
// Reads never fail. The chip counts erases and programs per block.
package mtdtest
