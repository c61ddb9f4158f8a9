// Package localapi is the node's command API and its local transport: a
// Unix socket that speaks JSON lines.
//
// One command table (Commands) serves every client of the daemon: the
// meterupd subcommands over the socket today, the technician console
// later. The daemon (package node) owns the one Agent and implements
// Handler; this package knows nothing of flash, journals or boards.
//
// # Wire protocol
//
// A connection starts with a hello in each direction, so that an older
// client and a newer daemon understand each other:
//
//	client → {"hello":{"proto":1,"client":"meterupd 1.2.0"}}
//	daemon → {"hello":{"proto":1,"min_proto":1,"agent":"1.3.0","commands":["status",…]}}
//
// The daemon answers with the highest protocol it shares with the client
// (today both speak 1) and refuses a client whose proto is below
// min_proto. Then the client sends one request per line and reads lines
// until the answer for that request:
//
//	client → {"id":1,"cmd":"install","paths":["/abs/image"],"sha256":"…","version":"2.0"}
//	daemon → {"id":1,"event":{…}}                 zero or more: progress, state changes
//	daemon → {"id":1,"done":true,"result":{…}}    or {"id":1,"done":true,"error":{…}}
//
// Unknown fields are ignored on both sides (a newer peer may add some); an
// unknown command is answered with the error code "unknown-command".
// Paths are absolute: the daemon never depends on a client's working
// directory. Lines are at most MaxLine bytes.
//
// The socket is created 0600 (root only); a group may be given read and
// write access (the metrology process). A socket file left behind by a
// crash is removed by the next daemon once it holds the node's lock.
package localapi
