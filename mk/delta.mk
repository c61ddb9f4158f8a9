# delta: the delta engine (package delta, meterpkg diff/patch/chain).
# Real tools: Debian's bsdiff/bspatch (compatibility tests in make test);
# xdelta3, zstd and GNU time for the benchmark.
DEB_PKGS += bsdiff xdelta3 zstd time

.PHONY: bench-delta
# bench-delta compares our deltas with bsdiff, xdelta3 and zstd on the real
# corpus (downloaded once into .cache/corpus) and prints a markdown table.
bench-delta: deps
	@bash scripts/bench-delta.sh
