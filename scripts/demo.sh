#!/usr/bin/env bash
# The local demo: sinkd on loopback receives real VM traffic that dpcap replay
# wraps exactly as the NIC does, and writes a pcap Wireshark opens.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo-out
bin=${BIN:-bin}
port=${DEMO_PORT:-3010}
metrics=${DEMO_METRICS:-127.0.0.1:9310}
mkdir -p "$out"
rm -f "$out"/capture.pcap "$out"/sinkd.log

# scrape PATH: an HTTP GET on the metrics listener with bash alone.
scrape() {
	exec 3<>"/dev/tcp/${metrics%:*}/${metrics##*:}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: sinkd\r\n\r\n' "$1" >&3
	cat <&3
	exec 3>&-
}

"$bin"/sinkd --listen ::1 --port "$port" -w "$out/capture.pcap" --metrics-addr "$metrics" 2>"$out/sinkd.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	scrape /readyz 2>/dev/null | grep -q '^ok' && break
	kill -0 $pid 2>/dev/null || { cat "$out/sinkd.log"; exit 1; }
	sleep 0.1
done

echo "== dpcap replay: 74 frames of real VM traffic (ping, DNS, HTTP over IPv4 and IPv6), wrapped as the NIC wraps them"
"$bin"/dpcap replay --pps 1000 --sink "[::1]:$port" testdata/vm-traffic.pcap
sleep 0.3
echo
echo "== sinkd /metrics (http://$metrics/metrics)"
scrape /metrics | grep '^sinkd_' | grep -v '^sinkd_socket_receive'
kill -TERM $pid
wait $pid || true
trap - EXIT
echo
echo "== sinkd's summary on exit"
grep -v 'level=' "$out/sinkd.log"
echo
echo "== the capture: $PWD/$out/capture.pcap"
# capinfos (wireshark-common, ~50 MB) where it is installed; the demo
# needs only tcpdump.
if command -v capinfos >/dev/null; then
	capinfos -t -E -c -d -u "$out/capture.pcap" | tail -n +2
else
	echo "$(tcpdump -n -r "$out/capture.pcap" 2>/dev/null | wc -l) packets, as tcpdump -r reads them"
fi
echo
tcpdump -c 12 -n -r "$out/capture.pcap" 2>/dev/null | cut -c1-110
echo "..."
echo
echo "Open it in Wireshark:  wireshark $out/capture.pcap"
