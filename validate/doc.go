// Package validate runs the tiered pre-install checks a package's manifest
// names for each item, and turns their outcome into a compliance level.
//
// # Checks
//
// Each manifest item lists its checks (manifest.Check: a kind, an argument,
// a value and a weight). The node's side is a Facts value the agent fills
// from the board and the journal before it installs: device type and
// hardware revision, power source, free space, installed version per
// component, present components and modules, enabled functionalities, and
// the SHA-256 of each component's current image (for the system component,
// the active slot). The kinds are:
//
//	device-type     the item lists the node's device type (or Arg names it)
//	hardware        the node's hardware revision and variant are in the item's range
//	prerequisite    every prerequisite version of the item is installed
//	source-version  a delta's From version is the one installed
//	power           the node runs on mains, not on the backup battery
//	free-space      at least Value bytes free (Value 0: the item's TargetSize)
//	component       the component or module named by Arg is present
//	function        the functionality named by Arg is enabled
//	source-digest   the current image's SHA-256 is the delta's SourceDigest
//
// A kind this version does not know fails (it is never silently passed).
//
// # Compliance levels
//
// Every failed check adds its weight (1 when zero) to the item's count.
// The item's thresholds (from the signed manifest) turn the count into a
// level: count ≥ Stop → level 3, stop the whole update; count ≥ Skip (when
// Skip > 0) → level 2, skip this item and go on with the others; else level
// 1, continue. Stop 0 means 1, so by default any failed check stops.
//
// Skipping a step of a version chain also skips the later steps of the
// same component: their source would not be there.
//
// # Invariants
//
// The functions here are pure: they read a manifest item and Facts and
// return data (Result, Report) the agent stores in its journal and shows in
// `meterupd status`. They never touch hardware, never panic on any input,
// and record one Outcome per check, passed or not.
package validate
