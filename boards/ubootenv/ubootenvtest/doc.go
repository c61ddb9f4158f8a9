// Package ubootenvtest provides an in-memory flash partition for tests of
// writes under power loss: it keeps the rules of the real parts (erase
// before program; NOR programs only clear bits; NAND programs each page
// once; aligned operations fail with hw.ErrAlignment) and loses power at a
// chosen operation: before it, after it, or inside it (torn: the first
// TornAt bytes done and the next byte half done). Clone is the reboot: a
// powered copy of what is on the flash.
package ubootenvtest
