#!/usr/bin/env bash
# make soak: sinkd under steady load with rotation every few seconds, for
# SOAK_SECONDS (default 600), at SOAK_PPS (default 140000: 80% of the
# loss-free rate measured in docs/BENCHMARKS.md). Passes when no packet is
# lost, every file is valid, RSS stays flat and no file descriptor leaks.
# Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
pps=${SOAK_PPS:-140000}
out=bench-out/soak
rm -rf "$out"
mkdir -p "$out"
hv=dpcap-soak-hv sk=dpcap-soak-sk ifname=s0
. scripts/netns.sh

ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 -G 5 -w "$out/soak-%Y%m%d-%H%M%S.pcap" 2>"$out/sinkd.err" &
pid=$!
ready $pid "$out/sinkd.err"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
rss0=$(rss $pid) fds0=$(fds $pid)
echo "soak: ${seconds}s at ${pps} pps, rotating every 5 s; sinkd RSS ${rss0} KiB, ${fds0} fds at start"
count=$((seconds * pps))
ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$count" --pps "$pps" \
	testdata/vm-traffic.pcap 2>"$out/replay.err" &
sender=$!
for ((t = 30; t < seconds; t += 30)); do
	sleep 30
	echo "  ${t}s: RSS $(rss $pid) KiB, $(fds $pid) fds, $(ls "$out"/*.pcap | wc -l) files"
done
wait $sender
sleep 2
rss1=$(rss $pid) fds1=$(fds $pid)
kill -TERM $pid
wait $pid || true
sent=$(awk '/^sent/ {print $2}' "$out/replay.err")
captured=$(awk '/packets captured/ {print $1}' "$out/sinkd.err")
drops=$(awk '/dropped by kernel/ {print $1}' "$out/sinkd.err")
files=0 total=0 bad=0
for f in "$out"/*.pcap; do
	files=$((files + 1))
	if n=$(capinfos -c -M -T -r "$f" 2>/dev/null | awk '{print $NF}') && [ -n "$n" ]; then
		total=$((total + n))
	else
		bad=$((bad + 1))
	fi
done
echo "sent $sent, captured $captured, in files $total, kernel drops $drops; $files files, $bad invalid"
echo "sinkd RSS ${rss0} -> ${rss1} KiB, fds ${fds0} -> ${fds1}"
fail=0
[ "$sent" = "$captured" ] && [ "$captured" = "$total" ] && [ "$drops" = 0 ] || { echo "FAIL: packets lost"; fail=1; }
[ "$bad" = 0 ] || { echo "FAIL: invalid files"; fail=1; }
[ "$fds1" -le "$fds0" ] || { echo "FAIL: file descriptors grew"; fail=1; }
[ "$rss1" -le $((rss0 * 3 / 2 + 4096)) ] || { echo "FAIL: RSS grew"; fail=1; }
[ $fail = 0 ] && echo "PASS"
exit $fail
