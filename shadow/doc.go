// Package shadow holds the documents of the device-state-replica link
// between a node and the head-end (DESIGN.md, "Interfaces to the outside"):
// the desired delta the replica publishes, retained, on
// state/<id>/update/delta; the report the node publishes on
// state/<id>/update; the acknowledgement on state/<id>/update/accepted; and
// the rule (Gate) by which a node acts on a desired document at most once.
//
// The package knows no transport: the node's MQTT link and the lab
// head-end both import it, so the contract on the wire is one piece of
// code. Every byte that arrives here is hostile: ParseDelta bounds the
// document's size and nesting before it decodes, checks every field, and
// returns a *DocError naming the field; it never panics and allocates
// nothing sized by the input beyond the document itself.
//
// The field names are fixed by the design and documented in docs/mqtt.md;
// never rename one. Unknown fields are ignored, so a newer head-end can add
// fields an older node does not know.
package shadow
