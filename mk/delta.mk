# delta: the delta engine (package delta, meterpkg diff/patch/chain).
# Real tools: Debian's bsdiff/bspatch (compatibility tests in make test);
# xdelta3, zstd and GNU time for the benchmark; npm and e2fsprogs (mke2fs)
# to build the corpora (executables; system images as tar and ext4).
DEB_PKGS += bsdiff xdelta3 zstd time e2fsprogs

.PHONY: bench-delta
# bench-delta compares our deltas with bsdiff, xdelta3 and zstd on the real
# corpora (executables and system images, downloaded once into .cache/) and
# prints a markdown table. It takes about half an hour on 2 cores.
# npm (the executables corpus) is asked for here, not in DEB_PKGS: many
# machines have it from Node.js itself, where Debian's package cannot go.
bench-delta: deps
	@command -v npm >/dev/null || bash scripts/deps.sh npm
	@bash scripts/bench-delta.sh
