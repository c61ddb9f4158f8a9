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
// Health checks are pluggable (HealthCheck); DefaultHealth checks that the
// expected set booted, that its image still has its digest, that the
// metrology process produces readings, and that the radio links (an
// environmental check: it rejects a trial, but never sends a known-good
// set to F).
package agent
