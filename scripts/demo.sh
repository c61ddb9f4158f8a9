#!/usr/bin/env bash
# make demo: a simulated meter goes through four update stories, told step
# by step. Usage: demo.sh BINDIR
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node="$work/meter"
mu() { "$bin/meterupd" --state "$node" "$@"; }
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n  $ meterupd %s\n' "$*"; mu "$@" | sed 's/^/    /'; }
image() { # image NAME VERSION [--unhealthy|--unbootable]: prints the digest
  mu sim image "$work/$1" --version "$2" --size $((4 << 20)) "${@:3}"
}

say "A new meter leaves the factory: version 1.0.0 in the fail-safe set F and in A."
step sim init "$node" --version 1.0.0 --image-size $((4 << 20))
step status

say "Story 1 — an update that succeeds."
echo "  The head-end sends version 2.0.0. The agent writes it into the idle slot B,"
echo "  while A keeps metering, checks its SHA-256 in flash, arms a trial boot of B and reboots."
sha=$(image v2.img 2.0.0)
step install "$work/v2.img" --sha256 "$sha" --version 2.0.0
echo "  The agent starts on B, on trial: its health checks pass, so it commits B."
step run --once
step status

say "Story 2 — the new set boots but fails its health check: rollback to the previous set."
echo "  Version 3.0.0 is broken: its metrology process produces no readings."
sha=$(image v3.img 3.0.0 --unhealthy)
step install "$work/v3.img" --sha256 "$sha" --version 3.0.0
echo "  On trial in A, the health check fails: A is marked bad, the node goes back to B."
step run --once
step status

say "Story 3 — the new set does not boot at all: the bootloader gives up, the agent reports it."
echo "  Version 3.0.1 panics at boot. The bootloader tries A three times, then starts B."
sha=$(image v301.img 3.0.1 --unbootable)
step install "$work/v301.img" --sha256 "$sha" --version 3.0.1
echo "  The agent starts on B, sees that the trial of A never came up, marks A bad and reports the rollback."
step run --once
step status

say "Story 4 — the previous set fails too: fall back to the factory set F."
echo "  Meanwhile a flash cell in B has worn out: B no longer matches its checksum."
step sim damage B
echo "  Version 4.0.0 is installed into A, and it is broken as well."
sha=$(image v4.img 4.0.0 --unhealthy)
step install "$work/v4.img" --sha256 "$sha" --version 4.0.0
echo "  A fails its trial. Going back, the bootloader finds B's image corrupt and will not start it:"
echo "  the previous set has failed too, and the node falls back to the factory set F."
step run --once

say "Bad input changes nothing: an image whose digest is wrong is refused."
printf '\n  $ meterupd install v2.img --sha256 000…000 --version 9.9.9\n'
if mu install "$work/v2.img" --sha256 "$(printf '0%.0s' {1..64})" --version 9.9.9 2>&1 | sed 's/^/    /'; then :; fi

say "Where the meter stands: it runs the factory set, meters, and reports what happened."
step status
step journal
