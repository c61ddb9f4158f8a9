# The power-cut suite's mutation proof (scripts/mutate.sh): each of eight
# broken changes to the agent is applied to a temporary copy of the tree
# (never the working tree), the part of the suite that exercises it runs,
# and the suite must fail; the script prints the line that caught each.
# `make test` runs it after the suite (see PC_MUTATE in the Makefile).
# perl applies the mutations.
DEB_PKGS += perl

.PHONY: mutate
mutate:
	@TMPDIR=$(or $(PC_TMP),$(TMPDIR),/tmp) GO=$(GO) bash scripts/mutate.sh
