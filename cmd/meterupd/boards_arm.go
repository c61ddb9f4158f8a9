// The hardware board files of 32-bit ARM meters (the file name limits this
// file to GOARCH=arm). A new ARMv7 board file adds its blank import here.

package main

import _ "meterupd/boards/am335x" // TI AM335x NAND reference meter
