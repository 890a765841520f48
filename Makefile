# dpcap: build, demo, test and benchmark on a fresh Debian machine.
# 'make deps' installs the Debian packages the tests and the demo use when
# they are missing (as root); Go modules come through the module proxy.

GO      ?= go
BIN     := bin
# command (or file):package pairs the build, the tests and the demo need.
TOOLS   := tcpdump:tcpdump tshark:tshark capinfos:wireshark-common editcap:wireshark-common \
           ip:iproute2 promtool:prometheus ping:iputils-ping bc:bc python3:python3 \
           gcc:gcc /usr/include/pcap/pcap.h:libpcap-dev pkg-config:pkg-config \
           /usr/include/dpdk/rte_flow.h:libdpdk-dev dpdk-testpmd:dpdk-dev \
           systemd-analyze:systemd runuser:util-linux node:nodejs npm:npm
# cgo parts, each behind a tag: libpcap's filter compiler (sinkd's filter
# expressions) and DPDK's rte_flow (dpcap serve --backend dpdk). Without
# them everything builds with CGO_ENABLED=0 and says what is missing.
TAGS    := libpcap,dpdk
# How long each fuzzer runs in 'make test'.
FUZZTIME ?= 12s
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all build deps demo test unit e2e fuzz lint bench soak clean install-extcap proto interop

all: build

build: deps
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/...

deps:
	@missing=""; for pair in $(TOOLS); do \
		need=$${pair%%:*}; \
		command -v $$need >/dev/null 2>&1 || test -e $$need || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# The Kubernetes schemas the manifests are validated against (npm registry).
	@test -d deploy/kubernetes/validate/node_modules || \
		npm ci --prefix deploy/kubernetes/validate --no-audit --no-fund --loglevel=error

demo: build
	bash scripts/demo.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet -tags $(TAGS) ./...
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...

unit: deps
	$(GO) test -race -tags $(TAGS) $$($(GO) list ./... | grep -v /e2e)
	CGO_ENABLED=0 $(GO) test ./filter ./control ./cmd/...

e2e: deps
	$(GO) test -count=1 ./e2e

# Every parser that sees network or file input, each for FUZZTIME.
FUZZERS := FuzzDecode:./decap FuzzDecodePayload:./decap FuzzReader:./capfile \
           FuzzStartRequest:./control FuzzPortMap:./control

fuzz:
	@for f in $(FUZZERS); do \
		echo "fuzz $${f%%:*} ($(FUZZTIME))"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$${f%%:*}$$" -fuzztime $(FUZZTIME) $${f#*:} || exit 1; \
	done

test: deps lint unit e2e fuzz

bench: build
	bash scripts/bench.sh

# Not part of test: SOAK_SECONDS (600) at SOAK_PPS (140000).
soak: build
	bash scripts/soak.sh

# Wireshark and tshark then list the interface "dpcap" (a live view).
install-extcap: build
	ln -sf $(abspath $(BIN)/sinkd) "$$(tshark -G folders | awk -F'\t' '/^Extcap path/ {print $$NF}')/dpcap-sink"

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
