# meterupd — the two commands of the quick start are `make demo` and
# `make test`. Everything else is a building block of those two.
#
# Each area of the project adds its Debian packages (the real peer tools the
# tests run against) and extra targets in mk/<area>.mk.

SHELL    := bash
.SHELLFLAGS := -eo pipefail -c
GO       ?= go
BIN      ?= bin
# Debian packages the tests run against; mk/*.mk append to it.
DEB_PKGS :=
# The version and commit `meterupd version` and status report.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
GOFLAGS_STATIC := -trimpath -ldflags='-s -w -X meterupd/node.version=$(VERSION) -X meterupd/node.commit=$(COMMIT)'

include $(sort $(wildcard mk/*.mk))

.PHONY: all build test vet deps demo clean powercut rss
all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_STATIC) -o $(BIN)/ ./cmd/...

# deps installs the Debian packages the tests need when one is missing.
deps:
	@bash scripts/deps.sh $(sort $(DEB_PKGS))

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The power-cut suite runs on its own so that its `powercut:` lines show.
# It rewrites small simulated flash files tens of thousands of times: on a
# RAM file system (/dev/shm, when there is one) it is CPU-bound instead of
# waiting for the disk. Then the mutation proof (mk/powercut.mk) shows that
# it fails for each of eight broken changes to the agent.
PC_TMP := $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm)
PC_RUN  = TMPDIR=$(or $(PC_TMP),$(TMPDIR),/tmp) $(GO) test -count=1 -timeout 40m -run '^TestPowerCut$$' -v ./agent/ | grep -E '^(powercut|ok|FAIL|--- FAIL|panic)|_test.go:'

test: deps vet
	$(GO) test -count=1 -timeout 40m -skip '^TestPowerCut$$' ./...
	$(PC_RUN)
	@$(MAKE) --no-print-directory mutate

# powercut runs only the power-cut suite.
powercut:
	$(PC_RUN)

demo: build
	@bash scripts/demo.sh $(BIN)

# rss: resident memory of the daemon at rest on the sim board.
rss: build
	@bash scripts/idle-rss.sh $(BIN)

clean:
	rm -rf $(BIN)
