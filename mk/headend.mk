# headend: the lab head-end (package headend, cmd/headend).
# Real services its tests start: PostgreSQL (the shared store of several
# instances), mosquitto (the external broker), Chromium (the web page's
# screenshot check).
DEB_PKGS += postgresql mosquitto chromium
