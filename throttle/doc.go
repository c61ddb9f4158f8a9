// Package throttle paces the agent's bulk I/O (delta apply, slot hashing,
// package store writes) so that the metrology process always has the CPU
// and the flash when it needs them. A meter's first job is metering.
//
// A Throttle combines three brakes, applied before each chunk of work:
//
//  1. A pause while the metrology process says it is closing an interval
//     (Gate): the close is the moment a reading must be taken and stored on
//     time. The pause is bounded (MaxPause) so a stuck gate cannot stall an
//     update forever; pauses that hit the bound are counted.
//  2. A byte rate (token bucket: BytesPerSec with a Burst).
//  3. CPU yields: after every YieldEvery bytes the agent sleeps Yield, so a
//     single-core SoC runs whatever else is runnable.
//
// Time is injected (Clock), so tests run without sleeping.
//
// On Linux, LowerPriority also drops the process to nice 19 and the lowest
// best-effort I/O priority. That is secondary: the I/O priority only covers
// direct reads and writes through a block-layer scheduler that honours it
// (it does not cover buffered writes flushed later by the kernel, nor raw
// NAND through MTD), and nice does not help when the agent holds the flash
// bus. The throttle in the agent is what counts.
package throttle
