#!/usr/bin/env bash
# Makes testdata/envelopes/*.pcap: envelopes captured for real by tcpdump.
# A "hv" namespace sends the frames of testdata/vm-traffic.pcap with dpcap
# replay (the NIC's envelope) over a veth to a "sink" namespace, where
# tcpdump records them on the veth (Ethernet) and on "any" (LINUX_SLL2 and
# LINUX_SLL). A VXLAN tunnel across the same veth gives real VXLAN, and
# frames larger than the veth's MTU give IPv6 fragments of envelopes.
# Needs root, iproute2, tcpdump, python3 and bin/dpcap (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
out=testdata/envelopes
hv=dpcap-mk-hv sk=dpcap-mk-sk
cleanup() {
	for ns in $hv $sk; do
		ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true
		ip netns del $ns 2>/dev/null || true
	done
}
trap cleanup EXIT
cleanup
mkdir -p "$out"
ip netns add $hv
ip netns add $sk
ip link add e0 netns $hv type veth peer name e0 netns $sk
i=1
for ns in $hv $sk; do
	ip -n $ns link set lo up
	ip -n $ns addr add 2001:db8:1::$i/64 dev e0 nodad
	ip -n $ns addr add 192.0.2.$i/24 dev e0
	ip -n $ns link set e0 up
	i=$((i + 1))
done
until ip netns exec $hv ping -c1 -W1 2001:db8:1::2 >/dev/null 2>&1; do sleep 0.1; done
ip netns exec $hv ping -c1 -W1 192.0.2.2 >/dev/null
# A socket at the sink port (ended with the namespace): dpcap replay exits
# 1 when the sink host refuses the IPv4 envelopes.
ip netns exec $sk python3 -c 'import socket, time; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 3010)); time.sleep(3600)' &
until ip netns exec $sk ss -Hlun 'sport = :3010' | grep -q .; do sleep 0.05; done

# capture FILE TCPDUMP-ARGS... -- COMMAND...: runs COMMAND while tcpdump
# records in the sink namespace. Immediate mode hands every packet over at
# once (instead of a ring block per second); its ring slots are sized by
# the snap length, hence -s and -B, or bursts overflow the ring.
capture() {
	local file=$1
	shift
	local args=()
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	local log
	log=$(mktemp)
	ip netns exec $sk tcpdump --immediate-mode -s 9300 -B 32768 -U -w "$out/$file" "${args[@]}" >/dev/null 2>"$log" &
	local pid=$!
	until grep -q "listening on" "$log"; do sleep 0.05; done
	rm -f "$log"
	"$@"
	sleep 0.5
	kill -INT $pid
	wait $pid || true
	echo "wrote $out/$file"
}
replay() { ip netns exec $hv bin/dpcap replay "$@" >/dev/null; }
both() {
	replay --sink "[2001:db8:1::2]:3010" --count 24 testdata/vm-traffic.pcap
	replay --sink "192.0.2.2:3010" --count 8 testdata/vm-traffic.pcap
}

capture nic-ether.pcap -i e0 udp port 3010 -- both
capture nic-sll2.pcap -i any udp port 3010 -- both
capture nic-sll.pcap -i any -y LINUX_SLL udp port 3010 -- both

# Frames of 1600 to 4000 bytes do not fit the veth's 1500-byte MTU: the
# sender's kernel fragments the envelopes.
big=$(mktemp)
python3 - "$big" <<'PY'
import struct, sys
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i, n in enumerate((1600, 2500, 4000)):
        frame = bytes.fromhex('020000000001020000000002' '88b5') + bytes((i + j) % 256 for j in range(n - 14))
        f.write(struct.pack('<IIII', 1, i, n, n) + frame)
PY
capture nic-frag.pcap -i e0 ip6 -- replay --sink "[2001:db8:1::2]:3010" "$big"
rm -f "$big"

ip -n $hv link add vx0 type vxlan id 42 remote 192.0.2.2 local 192.0.2.1 dstport 4789 dev e0
ip -n $sk link add vx0 type vxlan id 42 remote 192.0.2.1 local 192.0.2.2 dstport 4789 dev e0
ip -n $hv addr add 198.51.100.1/24 dev vx0
ip -n $sk addr add 198.51.100.2/24 dev vx0
ip -n $hv link set vx0 up
ip -n $sk link set vx0 up
capture vxlan.pcap -i e0 udp port 4789 -- ip netns exec $hv ping -q -c 3 -i 0.2 198.51.100.2
