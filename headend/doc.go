// Package headend is a lab head-end for meterupd nodes: the device state
// replica of docs/mqtt.md (desired and reported state per node, the desired
// document published retained, reports accepted by seq), a package server
// (HTTP with Range, and the in-band block stream), campaigns in waves, and
// the store all of it lives in (SQLite for one process, PostgreSQL for
// several instances sharing a fleet).
//
// Every document it publishes or reads is a type of package shadow, so the
// node and the head-end share one definition of the contract. The nodes are
// plain MQTT clients: a fleet simulator plugs in by connecting to the same
// broker.
//
// Invariants:
//   - the desired document of a node is versioned by the store, in one
//     statement (UPDATE … RETURNING), so two instances sharing a store never
//     publish the same version twice;
//   - the epoch is fixed when the store is created (its creation time in
//     Unix seconds, or one above the highest epoch it was told of), so a
//     rebuilt store starts a higher epoch and cannot freeze a node;
//   - a report is recorded only when its seq is above the last recorded
//     one, in one statement (an upsert with a WHERE), so a stale or replayed
//     report changes nothing.
package headend
