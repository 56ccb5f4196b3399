# tower-reg developer tasks. `make run` starts the daemon; `make test` runs
# every test. Both build the default layer's entry binaries first.

GO        ?= go
BIN       := $(CURDIR)/bin
PAYLOAD   := layer/defaultlayer/payload/.platforms
PLATFORMS := amd64 arm64
ENTRIES   := $(foreach a,$(PLATFORMS),$(PAYLOAD)/linux_$(a)/.towerreg/entry)
CRANE_VERSION       ?= v0.22.1
STATICCHECK_VERSION ?= v0.8.2
VERSITYGW_VERSION   ?= v1.8.0
REGCTL_VERSION      ?= v0.11.7
CONFORMANCE_VERSION ?= v0.0.0-20260831232431-97274622c111
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO_SOURCES := $(shell find . -name '*.go' -not -path './bin/*')

.PHONY: all build layer run pack test test-short bench bench-peers lint cross release tools ci clean fuzz soak

all: build

# The entry is static (no libc, no shell needed in the image) and built with
# -trimpath and no build ID so the layer digest only changes when the code does.
$(PAYLOAD)/linux_%/.towerreg/entry: $(wildcard cmd/towerreg-entry/*.go layer/entry/*.go layer/fusion/*.go layer/fusion/*/*.go) go.mod
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags='-s -w -buildid=' -o $@ ./cmd/towerreg-entry

layer: $(ENTRIES)

LDFLAGS_VERSION := -X github.com/tower-reg/tower-reg/daemon.Version=$(VERSION)

build: layer
	$(GO) build -ldflags '$(LDFLAGS_VERSION)' -o $(BIN)/towerreg-dev ./cmd/towerreg-dev

run: build
	$(BIN)/towerreg-dev up $(ARGS)

# `make pack ARGS='--layer DIR --out DIR'` writes DIR/layer.tar.gz and prints
# its {location, gzipDigest, gzipSize, tarDigest}; no ARGS packs the default
# layer into the current directory.
pack: build
	$(BIN)/towerreg-dev pack $(ARGS)

tools: $(BIN)/crane $(BIN)/versitygw $(BIN)/regctl $(BIN)/conformance

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/crane:
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)

# regclient's CLI, for the referrers tests (image copy --referrers,
# artifact list and put).
$(BIN)/regctl:
	GOBIN=$(BIN) $(GO) install github.com/regclient/regclient/cmd/regctl@$(REGCTL_VERSION)

# The OCI distribution-spec conformance suite, run read-only against the
# daemon by e2e's TestOCIConformance. A pseudo-version: the suite's module
# has no tags; this commit has the OCI_RO_DATA_* inputs for read-only registries.
$(BIN)/conformance:
	GOBIN=$(BIN) $(GO) install github.com/opencontainers/distribution-spec/conformance@$(CONFORMANCE_VERSION)

# The S3 server the FUSE client's tests run on loopback (posix backend).
$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

test: layer tools
	$(GO) test -race -count=1 -timeout 45m ./...

test-short: layer
	$(GO) test -short -count=1 ./...

bench: layer tools
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 1 -timeout 30m ./...

# `make bench-peers` measures the FUSE client against s3fs and rclone
# mount, Debian's, on the same versitygw in one run (issue 17), PEER_ROUNDS
# rounds. It needs root: it installs the missing peers with apt-get, mounts
# FUSE file systems and drops the page cache. A missing peer fails it.
PEER_ROUNDS ?= 5
PEER_PACKAGES := s3fs:s3fs rclone:rclone fusermount:fuse3

bench-peers: tools
	@set -e; missing=; for tp in $(PEER_PACKAGES); do \
		command -v $${tp%%:*} >/dev/null 2>&1 || missing="$$missing $${tp#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "bench-peers: run as root, to install$$missing with apt-get"; exit 1; fi; \
		echo "apt-get install$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q$$missing; \
	fi; \
	s3fs --version | sed -n 1p; rclone version | sed -n 1p
	TOWERREG_BENCH_PEERS=1 TOWERREG_E2E=require $(GO) test -run '^$$' -bench '^BenchmarkPeers$$' -benchtime $(PEER_ROUNDS)x -count 1 -timeout 60m ./layer/fusion/

lint: layer $(BIN)/staticcheck
	@unformatted=$$(gofmt -l $(GO_SOURCES)); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

# The daemon, the CLI and the dashboard are desktop tools: they build and
# vet clean on every desktop target. The entry, the FUSE client and the
# tests that run them are Linux-only: they run inside Linux containers.
CROSS_TARGETS := darwin/amd64 darwin/arm64 linux/amd64 linux/arm64 windows/amd64
LINUX_ONLY    := /e2e$$|/cmd/towerreg-entry$$|/layer/entry$$|/layer/fusion|/internal/s3test$$

cross: layer
	@set -e; pkgs=$$($(GO) list ./... | grep -v -E '$(LINUX_ONLY)'); \
	for t in $(CROSS_TARGETS); do \
		echo "cross $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet $$pkgs; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null ./cmd/towerreg-dev; \
	done

# `make release` builds the daemon for every desktop target into DIST,
# named towerreg-dev_VERSION_OS_ARCH (.exe on Windows), each with the
# default layer's entry binaries embedded (`layer` runs first: they are
# Linux binaries, the same in every target), plus DIST/SHA256SUMS. It then
# checks that every binary is there and that the sums verify.
DIST ?= $(CURDIR)/dist

release: layer
	@set -e; rm -rf $(DIST); mkdir -p $(DIST); names=""; \
	for t in $(CROSS_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		name=towerreg-dev_$(VERSION)_$${os}_$${arch}$$ext; names="$$names $$name"; \
		echo "release $$name"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS_VERSION)' -o $(DIST)/$$name ./cmd/towerreg-dev; \
	done; \
	cd $(DIST); sha256sum $$names > SHA256SUMS; \
	for n in $$names; do [ -s $$n ] || { echo "release: $$n is missing"; exit 1; }; done; \
	[ $$(wc -l < SHA256SUMS) -eq $(words $(CROSS_TARGETS)) ] || { echo "release: SHA256SUMS has $$(wc -l < SHA256SUMS) lines"; exit 1; }; \
	sha256sum -c --strict SHA256SUMS

ci: lint cross test

# Each fuzz target runs for FUZZTIME from its checked-in seed corpus
# (testdata/fuzz); a finding fails the run and leaves its input in
# testdata/fuzz/<target>/, to be committed with the fix.
FUZZTIME ?= 20s
# The fuzzer minimizes each new interesting input for up to 60 s by
# default, which would eat a 20 s budget whole on the slower targets.
FUZZMINIMIZETIME ?= 2s
FUZZ_TARGETS := \
	layer:FuzzAppendImage layer:FuzzAppendConfig layer:FuzzRewriteIndex layer:FuzzPackNames \
	daemon/token:FuzzDecodeRequest \
	daemon/proxy:FuzzParseRepo daemon/proxy:FuzzParseRef daemon/proxy:FuzzParseDigest \
	daemon/api:FuzzParseRoute daemon/public:FuzzPublicHandler

#
# Go 1.26's fuzz coordinator can fail a run as the FUZZTIME deadline
# passes, with "context deadline exceeded" and no input written
# (go.dev/issue/75804, fixed in Go 1.27): such a run is tried once more.
# A finding always writes its input, and fails at once.
fuzz: layer
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; start=$$(date +%s); \
		for attempt in 1 2; do \
			if out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ 2>&1); then \
				break; \
			fi; \
			if [ $$attempt = 1 ] && echo "$$out" | grep -qx '    context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
				echo "fuzz $$pkg $$name: the coordinator's deadline race (go.dev/issue/75804), no input written: once more"; \
				continue; \
			fi; \
			echo "$$out"; echo "fuzz $$pkg $$name: FAILED after $$(( $$(date +%s) - start ))s"; exit 1; \
		done; \
		echo "fuzz $$pkg $$name: $(FUZZTIME) with no finding ($$(echo "$$out" | grep -o 'execs: [0-9]*' | tail -n 1), $$(( $$(date +%s) - start ))s with the build)"; \
	done

# The long load run: 200 clients for SOAK (60 s) through the daemon.
SOAK ?= 60s
soak: layer
	TOWERREG_SOAK=$(SOAK) $(GO) test -count=1 -run '^TestLoad$$' -v -timeout 10m ./daemon/

clean:
	rm -rf $(BIN) $(ENTRIES) $(DIST)
