# dpcap: build, demo, test and benchmark on a fresh Debian machine.
# Each target installs only the Debian packages it uses when they are missing
# (as root): 'make demo' tcpdump, which it prints with, 'make build' the cgo
# headers, 'make test' (test-deps) everything the tests run. Go modules come
# through the module proxy.

GO      ?= go
BIN     := bin
# command (or file):package pairs. The demo prints with tcpdump (and
# capinfos, where installed: the tests install it).
DEMO_TOOLS  := tcpdump:tcpdump
# The cgo parts (-tags $(TAGS)).
BUILD_TOOLS := gcc:gcc /usr/include/pcap/pcap.h:libpcap-dev pkg-config:pkg-config \
               /usr/include/dpdk/rte_flow.h:libdpdk-dev
# What the tests, benchmarks and the soak run besides.
TEST_TOOLS  := $(DEMO_TOOLS) $(BUILD_TOOLS) tshark:tshark capinfos:wireshark-common editcap:wireshark-common mergecap:wireshark-common \
               ip:iproute2 promtool:prometheus ping:iputils-ping bc:bc python3:python3 \
               dpdk-testpmd:dpdk-dev systemd-analyze:systemd runuser:util-linux \
               node:nodejs npm:npm curl:curl
# cgo parts, each behind a tag: libpcap's filter compiler (sinkd's filter
# expressions) and DPDK's rte_flow (dpcap serve --backend dpdk). Without
# them everything builds with CGO_ENABLED=0 and says what is missing.
TAGS    := libpcap,dpdk
# The S3-compatible server the upload and fetch tests run against, pinned;
# go install builds it from the module proxy once (about 4 minutes).
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
# The linter beyond go vet (unused code, dead stores, bugs), pinned; go run
# builds it from the module proxy once (about 30 seconds).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The package and the image: VERSION names the release, PKG_VERSION adds
# the commit (Debian orders 0.1.0+git20261123.abc1234 after 0.1.0).
VERSION     ?= 0.1.0
REVISION    := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG_VERSION := $(VERSION)+git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$(REVISION)
IMAGE       ?= dpcap/dpcap:$(VERSION)
NFPM        := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_TOOLS   := dpkg-shlibdeps:dpkg-dev
STAGE       := $(BIN)/stage# packaging/deb/nfpm.yaml names it too
# How long each fuzzer runs in 'make test'.
FUZZTIME ?= 12s
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

# apt-install: installs the packages of the command:package pairs in $(1)
# whose command or file is missing.
define apt-install
	@missing=""; for pair in $(1); do \
		need=$${pair%%:*}; \
		command -v $$need >/dev/null 2>&1 || test -e $$need || missing="$$missing $${pair#*:}"; \
	done; \
	missing=$$(printf '%s\n' $$missing | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: stage deb image all build build-deps demo demo-deps test-deps s3-server test unit e2e fuzz lint bench soak clean install-extcap proto interop

all: build

build: build-deps
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/...

build-deps:
	$(call apt-install,$(BUILD_TOOLS))

test-deps: s3-server
	$(call apt-install,$(TEST_TOOLS))
	@# The Kubernetes schemas the manifests are validated against (npm registry).
	@test -d deploy/kubernetes/validate/node_modules || \
		npm ci --prefix deploy/kubernetes/validate --no-audit --no-fund --loglevel=error

# MinIO, unless one is on PATH or where go install puts it.
s3-server:
	@command -v minio >/dev/null 2>&1 || test -x "$$($(GO) env GOPATH)/bin/minio" || test -x "$$($(GO) env GOBIN)/minio" || \
		{ echo "installing minio $(MINIO_VERSION) (go install, about 4 minutes)"; $(GO) install github.com/minio/minio@$(MINIO_VERSION); }

demo-deps:
	$(call apt-install,$(DEMO_TOOLS))

# The demo needs no cgo part and none of the heavy clients (S3, gRPC, BPF):
# a pure Go build of its two commands with -tags minimal, in a directory of
# its own so that it never replaces the full build in $(BIN).
demo: demo-deps
	CGO_ENABLED=0 $(GO) build -tags minimal -o $(BIN)/demo/ ./cmd/sinkd ./cmd/dpcap
	BIN=$(BIN)/demo bash scripts/demo.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet -tags $(TAGS) ./...
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) build -tags minimal -o /dev/null ./cmd/sinkd ./cmd/dpcap
	$(GO) run $(STATICCHECK) -tags $(TAGS) ./...
	CGO_ENABLED=0 $(GO) run $(STATICCHECK) ./...

unit: test-deps
	$(GO) test -race -tags $(TAGS) $$($(GO) list ./... | grep -v /e2e)
	CGO_ENABLED=0 $(GO) test ./filter ./control/... ./cmd/...

e2e: test-deps
	$(GO) test -count=1 -timeout 20m ./e2e

# Every parser that sees network or file input, each for FUZZTIME.
FUZZERS := FuzzDecode:./decap FuzzDecodePayload:./decap FuzzReader:./capture/pcapfile \
           FuzzAdd:./decap/reassembly FuzzStartRequest:./control FuzzPortMap:./control

fuzz:
	GO=$(GO) TAGS=$(TAGS) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(FUZZERS)

test: test-deps lint unit e2e fuzz

bench: build test-deps
	bash scripts/bench.sh

# Not part of test: e2e's TestSoak for SOAK_SECONDS (600) at SOAK_PPS
# (140000), grading sinkd's /metrics; skipped unless DPCAP_SOAK_SECONDS is set.
SOAK_SECONDS ?= 600
SOAK_PPS     ?= 140000
soak: test-deps
	DPCAP_SOAK_SECONDS=$(SOAK_SECONDS) DPCAP_SOAK_PPS=$(SOAK_PPS) \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout $$(($(SOAK_SECONDS) + 600))s ./e2e

# What the package and the image hold: sinkd and dpcap with libpcap's
# filter compiler (Debian's libpcap0.8), without the DPDK backend (its
# libraries are a build of their own; see docs/DEPLOYMENT-dpdk.md), and the
# units pointed at /usr/bin.
stage: build-deps
	rm -rf $(STAGE) && mkdir -p $(STAGE)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "-s -w" -tags libpcap -o $(STAGE)/ ./cmd/sinkd ./cmd/dpcap
	for u in sinkd dpcap; do sed 's|/usr/local/bin/|/usr/bin/|g' deploy/systemd/$$u.service >$(STAGE)/$$u.service; done

# bin/dpcap_VERSION_amd64.deb, built by nfpm (installed into bin/tools);
# earlier builds' packages are removed first, so bin/ holds only this one.
# Depends comes from dpkg-shlibdeps (Debian's own tool; it wants a
# debian/control, hence the scratch one): the libraries the binaries link,
# at the versions their symbols need (libc6 >= 2.34 from Debian 12 on).
deb: stage
	$(call apt-install,$(DEB_TOOLS))
	GOBIN=$(abspath $(BIN))/tools $(GO) install $(NFPM)
	rm -f $(BIN)/dpcap_*.deb
	d=$$(mktemp -d) && mkdir $$d/debian && printf 'Source: dpcap\n\nPackage: dpcap\nArchitecture: any\n' >$$d/debian/control && \
	deps=$$(cd $$d && dpkg-shlibdeps -O $(abspath $(STAGE))/sinkd $(abspath $(STAGE))/dpcap 2>/dev/null | sed -n 's/^shlibs:Depends=//p'); \
	rm -rf $$d; test -n "$$deps" || { echo "dpkg-shlibdeps: no dependencies found for $(STAGE)/sinkd, dpcap"; exit 1; }; \
	SHLIBS_DEPENDS="$$deps" VERSION=$(PKG_VERSION) $(BIN)/tools/nfpm package --config packaging/deb/nfpm.yaml --packager deb --target $(BIN)/

# bin/image (an OCI image layout) and bin/dpcap-image.tar (docker/podman
# load), built without a daemon or a registry by packaging/mkimage.
image: stage
	cd packaging/mkimage && $(GO) build -o $(abspath $(BIN))/tools/mkimage .
	$(BIN)/tools/mkimage --out $(BIN)/image --tar $(BIN)/dpcap-image.tar --tag $(IMAGE) \
		--version $(VERSION) --revision $(REVISION) $(STAGE)/sinkd $(STAGE)/dpcap

# Wireshark and tshark then list the interfaces "dpcap" (a live view of
# a local capture) and "dpcap-live" (a remote sink's, through sinkd --live).
install-extcap: build
	ln -sf $(abspath $(BIN)/sinkd) "$$(tshark -G folders | awk -F'\t' '/^Extcap path/ {print $$NF}')/dpcap-sink"
	ln -sf $(abspath $(BIN)/dpcap) "$$(tshark -G folders | awk -F'\t' '/^Extcap path/ {print $$NF}')/dpcap-live"

# Regenerates the Go code of dp-service's API (control/dpservice/dpdkpb)
# from its .proto; needs protoc (Debian: protobuf-compiler).
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
proto:
	GOBIN=$(abspath $(BIN))/tools $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(abspath $(BIN))/tools $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(abspath $(BIN))/tools:$$PATH protoc -I control/dpservice/dpdkpb \
		--go_out=. --go_opt=module=github.com/dpcap/dpcap \
		--go-grpc_out=. --go-grpc_opt=module=github.com/dpcap/dpcap \
		control/dpservice/dpdkpb/dpdk.proto

# Not part of test: builds DPDK 25.11 and dp-service from ../shared/vendor
# (cached in /var/cache/dpcap-interop; ~12 minutes the first time), runs
# the real dp-service with TAP ports in a namespace and drives it with
# dpcap serve --backend dpservice; the transcript is docs/INTEROP-dpservice.md.
interop: build
	bash scripts/interop.sh run

clean:
	rm -rf $(BIN) demo-out bench-out
