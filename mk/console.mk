# Technician console pieces: the YMODEM receiver (package ymodem) is tested
# against lrzsz's sz over a real pseudo-terminal (ymodem TestRealSz).
DEB_PKGS += lrzsz
# make demo's console story joins two pseudo-terminals with socat (a
# null-modem cable between the meter's port and the laptop).
DEB_PKGS += socat
