# The ARM binaries of the agent: static (CGO_ENABLED=0), stripped, for
# ARMv7 (GOARM=7, the AM335x class of meter SoCs) and arm64.
# `make test` runs the armv7 binary's self-test under qemu-arm-static
# (cmd/meterupd TestRealQEMUUserARMv7Selftest) and fails when it grows past
# its size budget.
DEB_PKGS += qemu-user-static

.PHONY: arm
arm:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GOFLAGS_STATIC) -o $(BIN)/meterupd-armv7 ./cmd/meterupd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_STATIC) -o $(BIN)/meterupd-arm64 ./cmd/meterupd
	@ls -l $(BIN)/meterupd-armv7 $(BIN)/meterupd-arm64
