#!/usr/bin/env bash
# Interop with the real dp-service (issue 10): builds DPDK 25.11 and
# dp-service from ../shared/vendor into a cache outside the work tree, runs
# dp-service in a private network namespace with TAP ports (as its own test
# suite does) and drives it with dpcap serve --backend dpservice.
#
#   scripts/interop.sh build   build (idempotent: finished stages are skipped)
#   scripts/interop.sh run     build, then run the interop transcript
#
# Environment: VENDOR (archives), CACHE (build cache), OUT (transcript file).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${VENDOR:-}" ]; then
	# ../shared/vendor beside the checkout; worktrees sit one level deeper.
	for VENDOR in "$here/../shared/vendor" "$here/../../shared/vendor"; do
		[ -f "$VENDOR/dpservice-src.tar.gz" ] && break
	done
fi
CACHE=${CACHE:-/var/cache/dpcap-interop}
DPDK_SRC=$CACHE/src/dpdk-25.11
DPSVC_SRC=$CACHE/src/dpservice
DPDK_PREFIX=$CACHE/dpdk
DPSVC_BIN=$DPSVC_SRC/build/src/dpservice-bin

log() { printf '[interop %s] %s\n' "$(date -u +%T)" "$*" >&2; }

unpack() {
	[ -f "$CACHE/.unpacked" ] && return
	log "unpacking sources into $CACHE/src"
	rm -rf "$CACHE/src"
	mkdir -p "$CACHE/src"
	tar -xzf "$VENDOR/dpdk-25.11.tar.gz" -C "$CACHE/src"
	tar -xzf "$VENDOR/dpservice-src.tar.gz" -C "$CACHE/src"
	# dp-service's patches, applied as its Dockerfile does.
	(cd "$DPDK_SRC" && hack=$DPSVC_SRC/hack &&
		patch -s -p1 -R <"$hack/dpdk_25_11_mtu.patch" &&
		for p in fdb_def_rule log telemetry_key no_pattern_template_validation \
			ethdev_conversion allow_outer_inner_ipip; do
			patch -s -p1 <"$hack/dpdk_25_11_$p.patch"
		done)
	touch "$CACHE/.unpacked"
}

build_dpdk() {
	[ -f "$CACHE/.dpdk" ] && return
	log "building DPDK 25.11 (minimal, about 8 minutes on 2 cores)"
	# Debian's python3 (first on PATH) has pyelftools; a pyenv shim may not.
	(cd "$DPDK_SRC" && rm -rf build &&
		PATH=/usr/bin:$PATH meson setup build --prefix="$DPDK_PREFIX" -Dplatform=generic \
			-Dmax_ethports=132 \
			-Denable_drivers=bus/pci,bus/vdev,mempool/ring,net/tap,net/ring \
			-Ddisable_libs=power,vhost,gpudev -Ddisable_apps='*' -Dtests=false \
			-Denable_docs=false >"$CACHE/dpdk-setup.log" &&
		PATH=/usr/bin:$PATH ninja -C build install >"$CACHE/dpdk-build.log")
	touch "$CACHE/.dpdk"
}

dpdk_env() {
	local pc
	pc=$(dirname "$(find "$DPDK_PREFIX" -name libdpdk.pc | head -1)")
	export PKG_CONFIG_PATH=$pc
	export LD_LIBRARY_PATH=$(dirname "$pc")
}

build_dpservice() {
	[ -f "$CACHE/.dpservice" ] && return
	log "building dp-service (about 4 minutes)"
	dpdk_env
	# dp-service builds with -Werror=conversion, which DPDK's headers trip
	# unless they are system headers.
	(cd "$DPSVC_SRC" && rm -rf build &&
		CFLAGS="-isystem $DPDK_PREFIX/include" CXXFLAGS="-isystem $DPDK_PREFIX/include" \
			DPSERVICE_VERSION=interop PATH=/usr/bin:$PATH \
			meson setup build -Dbuildtype=debug >"$CACHE/dpservice-setup.log" &&
		PATH=/usr/bin:$PATH ninja -C build src/dpservice-bin >"$CACHE/dpservice-build.log")
	touch "$CACHE/.dpservice"
}

# The Debian packages the builds need (vendor/README.md).
PACKAGES="meson ninja-build python3-pyelftools pkg-config build-essential protobuf-compiler
	protobuf-compiler-grpc libgrpc++-dev libprotobuf-dev uuid-dev libibverbs-dev libmnl-dev
	libnuma-dev libpcap0.8-dev"

build() {
	# shellcheck disable=SC2086
	missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>&1 | awk '$1 != "ii" {print $NF}')
	if [ -n "$missing" ]; then
		log "installing: $missing"
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
	mkdir -p "$CACHE"
	unpack
	build_dpdk
	build_dpservice
	log "dp-service built: $DPSVC_BIN"
}

RUN=$CACHE/run
NS=dpcap-interop-$$
DPCAP=$here/bin/dpcap
ORCH=$RUN/dpservice-orchestrator
SOCK=$RUN/dpcap.sock
OUT=${OUT:-$here/docs/INTEROP-dpservice.md}
dpsvc_pid=
serve_pid=

# dp-service as its own test suite runs it: TAP vdevs in a private
# namespace, no hugepages, no offload (without it, it exits on TAP).
start_dpservice() {
	ip netns exec "$NS" env DP_CONF= LD_LIBRARY_PATH="$LD_LIBRARY_PATH" "$DPSVC_BIN" \
		-l 0,1 --no-huge -m 4096 --file-prefix=dpcapinterop --no-pci \
		--vdev=net_tap0,iface=dtap0 --vdev=net_tap1,iface=dtap1 \
		--vdev=net_tap2,iface=dtapvf_0 --vdev=net_tap3,iface=dtapvf_1 -- \
		--pf0=dtap0 --pf1=dtap1 --vf-pattern=dtapvf_ --nic-type=tap \
		--ipv6=fc00:1::1 --enable-ipv6-overlay --grpc-port=1337 --no-stats --no-offload \
		>>"$RUN/dpservice.log" 2>&1 &
	dpsvc_pid=$!
	for _ in $(seq 60); do
		# Up once it answers gRPC: ABORTED "not initialized" is an answer.
		if ip netns exec "$NS" "$ORCH" check >/dev/null 2>&1; then return; fi
		kill -0 "$dpsvc_pid" 2>/dev/null || { tail -20 "$RUN/dpservice.log" >&2; return 1; }
		sleep 1
	done
	echo "dp-service did not answer within 60 s" >&2
	return 1
}

stop_dpservice() {
	[ -n "$dpsvc_pid" ] || return 0
	kill "$dpsvc_pid" 2>/dev/null || true
	wait "$dpsvc_pid" 2>/dev/null || true
	dpsvc_pid=
}

cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	stop_dpservice
	ip netns del "$NS" 2>/dev/null || true
}

# step runs a command for the transcript: the command, its output, its
# exit status.
step() {
	local shown=$1
	shift
	{
		printf '$ %s\n' "$shown"
		local rc=0
		"$@" 2>&1 || rc=$?
		printf '(exit %d)\n\n' "$rc"
	} >>"$OUT.tmp"
}

note() { printf '%s\n\n' "$*" >>"$OUT.tmp"; }

run() {
	build
	dpdk_env
	[ -x "$DPCAP" ] || { echo "$DPCAP missing: run make build" >&2; exit 1; }
	mkdir -p "$RUN"
	rm -rf "$RUN/state" "$RUN/dpservice.log"
	(cd "$here" && go build -o "$ORCH" ./internal/cmd/dpservice-orchestrator)
	trap cleanup EXIT
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	log "starting dp-service in namespace $NS"
	start_dpservice
	ip netns exec "$NS" "$DPCAP" serve --backend dpservice --underlay-ip fc00:1::1 \
		--socket "$SOCK" --state-dir "$RUN/state" 2>"$RUN/dpcap-serve.log" &
	serve_pid=$!
	for _ in $(seq 50); do "$DPCAP" status --socket "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 2
	local st="dpcap status --socket $SOCK"
	cat >"$OUT.tmp" <<HEAD
# Interop: dpcap serve --backend dpservice against the real dp-service

Recorded by \`make interop\` (scripts/interop.sh) on $(date -u +%Y-%m-%d) UTC: dp-service
(github.com/ironcore-dev/dpservice at 45bcfd6) and DPDK 25.11 built from ../shared/vendor,
dp-service run as its own test suite runs it (a private network namespace, TAP ports,
\`--no-offload\`: without offload it exits on TAP, its hairpin queues are mlx5-only).
\`dpservice-orchestrator\` (internal/cmd) plays dp-service's orchestrator (Initialize,
CreateInterface), as dpservice-cli or metalnet would; dpcap never calls either.
dpcap serve runs in the namespace: \`dpcap serve --backend dpservice --underlay-ip fc00:1::1\`
(dp-service at its default address, localhost:1337).

\`\`\`
HEAD
	note "# dp-service has started; its orchestrator has not initialized it yet"
	step "dpcap status" "$DPCAP" status --socket "$SOCK"
	step "dpservice-orchestrator init" ip netns exec "$NS" "$ORCH" init
	step "dpservice-orchestrator create vm-1 net_tap2 100 10.0.1.1 fd00:1::1" ip netns exec "$NS" "$ORCH" create vm-1 net_tap2 100 10.0.1.1 fd00:1::1
	step "dpservice-orchestrator create vm-2 net_tap3 100 10.0.1.2 fd00:1::2" ip netns exec "$NS" "$ORCH" create vm-2 net_tap3 100 10.0.1.2 fd00:1::2
	sleep 2
	note "# the interfaces as dpcap sees them (ListInterfaces)"
	step "dpcap status" "$DPCAP" status --socket "$SOCK"
	note "# an id dp-service does not have: refused before CaptureStart"
	step "dpcap start --sink-node-ip fc00:2::9 --udp-dst-port 3010 --vf vm-1,vm-9" \
		"$DPCAP" start --socket "$SOCK" --sink-node-ip fc00:2::9 --udp-dst-port 3010 --vf vm-1,vm-9
	note "# dp-service without offload refuses capture: one line, nothing left active"
	step "dpcap start --sink-node-ip fc00:2::9 --udp-dst-port 3010 --vf vm-1,vm-2 --pf 0" \
		"$DPCAP" start --socket "$SOCK" --sink-node-ip fc00:2::9 --udp-dst-port 3010 --vf vm-1,vm-2 --pf 0
	step "dpcap status" "$DPCAP" status --socket "$SOCK"
	step "dpcap stop" "$DPCAP" stop --socket "$SOCK"
	note "# dp-service's own log of those calls"
	step "grep -i capture dpservice.log" grep -i capture "$RUN/dpservice.log"
	note "# dp-service restarts (killed and started again): a new process, not initialized"
	stop_dpservice
	start_dpservice
	sleep 3
	step "dpcap status" "$DPCAP" status --socket "$SOCK"
	step "dpservice-orchestrator init" ip netns exec "$NS" "$ORCH" init
	step "dpservice-orchestrator create vm-1 net_tap2 100 10.0.1.1 fd00:1::1" ip netns exec "$NS" "$ORCH" create vm-1 net_tap2 100 10.0.1.1 fd00:1::1
	sleep 2
	step "dpcap status -o yaml" "$DPCAP" status -o yaml --socket "$SOCK"
	note "# dpcap serve's log"
	step "cat dpcap-serve.log" cat "$RUN/dpcap-serve.log"
	echo '```' >>"$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	log "transcript: $OUT"
}

case ${1:-run} in
build) build ;;
run) run ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
