// Package slots is the A/B/F model: the states a system set goes through,
// the legal transitions between them as pure functions, the roles (active,
// idle, fail-safe), and the operations on a slot's flash (erase, write
// sequentially in erase-block units, hash).
//
// States, as stored in the journal (never rename a value):
//
//	empty     never written (a new node's B slot)
//	updating  being written; its content means nothing until verified
//	ready     written and its digest verified; not yet tried
//	trial     armed for (or running) its first boots, not yet confirmed
//	good      confirmed: it booted and passed its health checks
//	bad       failed: a digest, a boot or a health check; never armed again
//	          until it is rewritten
//
// Legal transitions (Next):
//
//	write   empty|good|bad|ready → updating   (only an idle slot, never F)
//	verify  updating → ready
//	arm     ready → trial
//	commit  trial → good
//	fail    updating|ready|trial|good → bad
//
// F, the factory fail-safe set, is always good and has no transitions: the
// agent never writes it. Everything else is an error (ErrIllegal): the agent
// asks this package before every state change, so a bug cannot, say, arm a
// slot whose digest was never checked.
package slots
