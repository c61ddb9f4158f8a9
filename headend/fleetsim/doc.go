// Package fleetsim is the fleet simulator of `headend simulate`: N
// simulated meters in one process, each the real node — the daemon of
// package node (its agent, package store, delta apply, trial boot and
// health checks) on a sim board, and the MQTT link of package mqttlink with
// its own connection to the broker, a client of the daemon's command API.
// No stub nodes: the only thing simulated is the hardware (the sim board).
//
// Each node has its own state directory (Config.Dir/<id>), copied from a
// template provisioned once as `meterupd sim init` does: a small NOR part
// (4 KiB erase blocks, 16 KiB slots, a 12 KiB factory image) of about
// 190 KiB of flash files. Its boards are opened WithoutHeldFiles and its
// daemons Embedded (no local API socket, no lock file), so an idle node
// costs the process one file descriptor: its MQTT connection.
//
// Config.Fail picks, from Config.Seed alone, the nodes of hardware
// revision FailHardware; WriteRelease builds the release whose item for
// that revision fails its health check after the switch (the node rolls
// back and reports it), the others commit.
//
// After a campaign, Outcomes reads every node's own journal (through its
// daemon's `journal` command) and Check compares it with what the
// head-end recorded: lost (a final result the head-end does not have, or
// has wrong) and duplicated (a job begun, activated or ended more than
// once in a journal).
package fleetsim
