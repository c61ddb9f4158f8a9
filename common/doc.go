// Package common gives the common data partition (hw.PartCommon) its
// layout: the data every system set shares, and the archive a rollback
// restores it from.
//
// # Layout
//
// The partition is cut into areas of whole erase blocks (at least
// MinArea bytes each; the cut depends on the flash geometry only):
//
//	areas 0-1   settings: configuration, calibration, schema version
//	areas 2-3   archive: a copy of the settings with its SHA-256 and the
//	            software identity it was taken under
//	areas 4-…   readings: the metrology process's append-only records
//
// Each area holds frames of internal/flashrec (CRC-32C over header and
// payload; magics "MUCS", "MUCA", "MUCR"). Settings and archive are
// snapshot stores: a write erases the other area of the pair and programs
// the whole new snapshot there, so the previous snapshot stays intact
// until the new one is complete; the newest valid snapshot wins. Readings
// are a ring of at least two areas: appended after the newest, the oldest
// area erased when the newest is full (a meter's load profile keeps the
// newest readings; the head-end has collected the old ones).
//
// # What a new version may change
//
// Settings carry a schema version. A new software version may migrate the
// configuration (and raise the schema version); calibration is the meter's
// legally sealed adjustment and is carried across versions as it is. That
// is why the agent archives all three before activating a new set, and
// restores all three if the set is rolled back or falls back: the older
// software finds the settings in the schema it understands.
//
// # Invariants
//
//   - Readings are never rolled back. Archive and Restore touch only the
//     settings and archive areas; readings appended between them (under a
//     trial set) survive the restore.
//   - Archive and Restore are power-safe and idempotent: after a power cut
//     at any flash operation the settings are the old or the new snapshot,
//     never a mix, never none; running the operation again completes it;
//     running it when it is already complete writes nothing.
//   - A restore only writes settings whose SHA-256 matches the archive's
//     recorded digest (ErrArchiveCorrupt otherwise, nothing written).
package common
