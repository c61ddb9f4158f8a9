# The daemon (node, localapi) and how a meter starts it (dist/): the unit
# is checked with systemd-analyze verify, the SysV/BusyBox init script with
# shellcheck and by running it (logger hands the daemon's log to syslog).
DEB_PKGS += systemd shellcheck bsdutils
