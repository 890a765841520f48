#!/usr/bin/env bash
# make bench: sinkd's hot path in Go benchmarks, then sinkd and tcpdump -w
# capturing the same stream side by side. A "hypervisor" namespace sends
# the envelopes with dpcap replay over a veth to a "sink" namespace where
# sinkd (UDP socket) and tcpdump (AF_PACKET on the veth) both capture them.
# Both get a 64 MiB buffer. Needs root.
#   BENCH_PACKETS  packets per rate (default 300000)
#   BENCH_RATES    packets/s to try; 0 = as fast as dpcap replay sends
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out
packets=${BENCH_PACKETS:-300000}
rates=${BENCH_RATES:-"50000 100000 200000 0"}
mkdir -p "$out"

echo "== Go benchmarks (allocs/op must be 0 on the hot path)"
go test -run '^$' -bench . -benchmem -benchtime 20000x ./udpsource ./sink ./pcapout | grep -E '^Benchmark'
echo

hv=dpcap-bench-hv sk=dpcap-bench-sk
cleanup() {
	for ns in $hv $sk; do
		ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del $ns 2>/dev/null || true
	done
}
trap cleanup EXIT
cleanup
ip netns add $hv
ip netns add $sk
ip link add b0 netns $hv mtu 1600 type veth peer name b0 netns $sk mtu 1600
i=1
for ns in $hv $sk; do
	ip -n $ns link set lo up
	ip -n $ns addr add 2001:db8:1::$i/64 dev b0 nodad
	ip -n $ns link set b0 up
	i=$((i + 1))
done
until ip netns exec $hv ping -c1 -W1 2001:db8:1::2 >/dev/null 2>&1; do sleep 0.1; done

# cpu PID: user+system seconds the process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# field FILE PATTERN: the number before PATTERN in a summary.
field() { grep -m1 "$2" "$1" | awk '{print $1}'; }

echo "== live capture of the same stream: sinkd vs tcpdump -w ($packets packets per rate from testdata/vm-traffic.pcap: 60-1514 B frames, 309 B average)"
printf '%-10s %9s | %9s %7s %6s | %9s %7s %6s | %8s %8s\n' \
	"rate pps" "sent" "sinkd" "drops" "cpu s" "tcpdump" "drops" "cpu s" "captured" "cpu"
printf '%-10s %9s | %9s %7s %6s | %9s %7s %6s | %8s %8s\n' \
	"" "" "captured" "kernel" "" "captured" "kernel" "" "ratio" "ratio"
for rate in $rates; do
	rm -f "$out"/sinkd.pcap "$out"/tcpdump.pcap
	ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 -w "$out/sinkd.pcap" --metrics-addr "" 2>"$out/sinkd.err" &
	spid=$!
	ip netns exec $sk tcpdump -i b0 -B 65536 -w "$out/tcpdump.pcap" 'udp dst port 3010' 2>"$out/tcpdump.err" &
	tpid=$!
	sleep 1
	pps_flag=()
	[ "$rate" != 0 ] && pps_flag=(--pps "$rate")
	ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$packets" "${pps_flag[@]}" \
		testdata/vm-traffic.pcap 2>"$out/replay.err"
	# tcpdump hands packets over a ring block at a time; a block retires
	# when full or after its 1 s timeout. Stop after that.
	sleep 2
	scpu=$(cpu $spid) tcpu=$(cpu $tpid)
	kill -TERM $spid
	kill -INT $tpid
	wait $spid $tpid || true
	sent=$(awk '/^sent/ {print $2}' "$out/replay.err")
	scap=$(field "$out/sinkd.err" "packets captured")
	sdrop=$(field "$out/sinkd.err" "dropped by kernel")
	tcap=$(field "$out/tcpdump.err" "packets captured")
	tdrop=$(field "$out/tcpdump.err" "dropped by kernel")
	label=$rate
	[ "$rate" = 0 ] && label="max($(awk '/^sent/ {print $(NF-1)}' "$out/replay.err" | tr -d '('))"
	printf '%-10s %9s | %9s %7s %6s | %9s %7s %6s | %8s %8s\n' "$label" "$sent" \
		"$scap" "$sdrop" "$scpu" "$tcap" "$tdrop" "$tcpu" \
		"$(awk -v a="$scap" -v b="$tcap" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "inf" }')" \
		"$(awk -v a="$scpu" -v b="$tcpu" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
echo
echo "captured ratio = sinkd / tcpdump packets captured (>= 1 means sinkd lost no more than tcpdump);"
echo "cpu ratio = sinkd / tcpdump CPU seconds. tcpdump writes the whole envelope, sinkd the inner frame."
