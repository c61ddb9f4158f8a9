// Package node is the composition root of a meter: it opens the board
// (with its lock, paths and provisioning files), owns the one Agent, and
// serves every client through the command API of package localapi.
//
// Two ways to run the commands, with the same results:
//
//   - Daemon (`meterupd run`): one goroutine owns the Agent. Commands from
//     every client are queued to it, executed in order and answered; each
//     journal commit becomes an event for the subscribers. Status answers
//     from the last committed record, so it never waits behind a long
//     install. On the sim board a reboot restarts the agent inside the
//     same process, as init does on a meter; clients carry on.
//   - Direct (Open): when no daemon runs, a command opens the node under
//     its lock and executes on the Agent itself.
//
// A damaged provisioning file (keys.pem, identity.json) degrades the node
// instead of stopping it: it runs, refuses signed installs with a sentence
// that says why, and status lists the problem.
package node
