# Technician console pieces: the YMODEM receiver (package ymodem) is tested
# against lrzsz's sz over a real pseudo-terminal (ymodem TestRealSz).
DEB_PKGS += lrzsz
