// Package agent is where the pieces meet: the persisted update state
// machine of one node. It writes the idle slot from a full image or a
// delta chain while the active slot keeps running, verifies it, arms a
// trial boot in one boot-control write, reconciles what the bootloader
// booted with the journal at every start, runs the health checks, and
// commits, rolls back to the previous set, or falls back to F.
//
// # The state machine
//
// One Record (record.go) is the whole persisted state; every change is a
// journal commit made before the side effect it announces. Update.Phase is
// one of seven values and step (machine.go) is one switch over them:
//
//	downloaded → installing → installed → activating → trial → (committed)
//	                                   ↘ rolling-back → (rolled back)
//	                                                  ↘ falling-back → (on F)
//
// After a power cut, Start re-enters step from the journal; each case
// redoes or skips its side effect idempotently (the resume table of
// Mender's getNextState, in one place). Update.Starts is the loop guard: a
// trial that keeps restarting without a verdict is rejected.
//
// # Invariants
//
//   - The boot order names only slots the journal has as good, or the
//     trial it armed; a slot leaves the order before its first erase.
//   - A verified block is never written again: progress (and the delta
//     engine's checkpoint) is journalled after every erase block.
//   - What is armed was hashed in flash and matched the expected digest.
//   - F is never written; the common data is never written by an update.
//   - A refused request (bad digest, too large, busy, bad package…)
//     changes nothing on flash or in the package store.
//
// # What a boot into F means
//
// The bootloader starts F in two cases the agent tells apart by the boot
// state it left: every good set in the order with its attempts spent (the
// sets failed: they are marked bad, the node falls back), or no readable
// boot state at all — both copies of the boot record corrupt
// (hw.ErrBootStateLost), or U-Boot's default environment with no order.
// The second is no evidence against any set: the agent rewrites the order
// from the journal, which knows which sets are good, and reboots into the
// primary (Record.BootRepairs bounds the attempts at this, so a boot
// control that never keeps its state cannot make the node reboot forever;
// past the bound the node stays on F with every good set still good). Only
// a set the bootloader tried is ever marked bad.
//
// # A trial that hangs
//
// The trial's health checks run under a deadline (Options.TrialTimeout,
// on the Options.Clock). With no verdict by then the agent reboots without
// deciding: the start was counted, the reboot spends one of the
// bootloader's attempts, and a trial that never reaches a verdict runs out
// of them and is rolled back. If even the reboot hangs, the watchdog does
// it: KeepWatchdog feeds the board's watchdog (hw.Watchdog) only while no
// trial is past its deadline. The daemon opens the watchdog and runs
// KeepWatchdog in a goroutine it owns; under systemd it feeds the service
// watchdog instead, through the same interface.
//
// Health checks are pluggable (HealthCheck); DefaultHealth checks that the
// expected set booted, that its image still has its digest, that the
// metrology process produces readings, and that the radio links (an
// environmental check: it rejects a trial, but never sends a known-good
// set to F).
package agent
