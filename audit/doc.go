// Package audit keeps the legal-metrology audit trail and the operational
// event ring, each on its own flash partition.
//
// # The legal log (hw.PartAudit)
//
// Every legally relevant update event (package received and verified,
// activated, forced, committed, rolled back, fell back, common data restored,
// key change, technician login) is a Record: the kind, the software
// identities and digests before and after, the origin (job id or
// technician), the time and whether the clock was valid, and the SHA-256 of
// the previous record's frame. Records are framed by internal/flashrec
// (magic "MUAL", CRC-32C over header and payload) and appended one after
// another from the partition's start.
//
// Invariants:
//
//   - Append-only. This package has no call that erases or overwrites the
//     log: nothing remote (or local) can erase it through the agent.
//   - Full means refused. An Append that does not fit fails with ErrFull
//     and writes nothing; the caller refuses the update that needed it.
//   - Power-safe. An append is one program of fresh (erased) flash, checked
//     erased before and read back after. A power cut leaves the record
//     complete or torn; a torn record is never programmed over: the next
//     record goes after it and links to the last complete record, so a
//     torn write never breaks the chain (Verify counts it as a torn gap).
//   - Tamper-evident. Verify walks the chain and reports the first record
//     whose sequence or previous-record hash does not hold. Data after the
//     newest record that is not a record is reported as a torn tail; the
//     head hash (Report.HeadHash) is what the head-end keeps to notice a log
//     cut short.
//   - Any agent reads any log: frames of a newer format are chained by
//     their raw bytes and counted as unchecked, so an older agent after a
//     rollback keeps appending.
//
// # The operational ring (hw.PartOpLog)
//
// High-volume events (vetoes asked and answered, login failures, lockouts)
// go to an OpLog: a ring of erase-block areas that erases its oldest area
// when the newest is full. It never refuses for lack of room and never
// touches the legal log, so filling it (e.g. by failing logins at the
// optical port) costs only old operational entries.
package audit
