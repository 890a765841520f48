#!/usr/bin/env bash
# Makes testdata/vm-traffic.pcap: ordinary VM traffic captured for real.
# A "vm" namespace reaches a "gw" namespace over a veth pair; gw serves DNS
# (dnsmasq) and HTTP (python3 http.server); the vm pings over IPv4 and IPv6,
# resolves names and fetches a page over both, while tcpdump records the vm's
# interface. Needs root, iproute2, ethtool, tcpdump, dnsmasq, ping, curl, python3.
set -euo pipefail
out=${1:-testdata/vm-traffic.pcap}
vm=dpcap-mk-vm gw=dpcap-mk-gw
www=
cleanup() {
	ip netns pids $gw 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del $vm 2>/dev/null || true
	ip netns del $gw 2>/dev/null || true
	[ -z "$www" ] || rm -rf "$www"
	rm -rf /etc/netns/$vm
}
trap cleanup EXIT
cleanup
www=$(mktemp -d)
ip netns add $vm
ip netns add $gw
ip link add vm0 netns $vm type veth peer name gw0 netns $gw
ip -n $vm link set lo up
ip -n $gw link set lo up
ip -n $vm addr add 192.0.2.10/24 dev vm0
ip -n $vm addr add 2001:db8:10::10/64 dev vm0 nodad
ip -n $gw addr add 192.0.2.1/24 dev gw0
ip -n $gw addr add 2001:db8:10::1/64 dev gw0 nodad
ip -n $vm link set vm0 up
# Segmentation offloads would record 7 KB "frames" no NIC puts on a wire.
for ns_if in "$vm vm0" "$gw gw0"; do
	set -- $ns_if
	ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off >/dev/null 2>&1
done
ip -n $gw link set gw0 up
ip -n $vm route add default via 192.0.2.1

mkdir -p /etc/netns/$vm
echo "nameserver 192.0.2.1" >/etc/netns/$vm/resolv.conf
head -c 6000 /dev/urandom | base64 >"$www/index.html"
ip netns exec $gw dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=192.0.2.1 \
	--bind-interfaces --address=/web.lab/192.0.2.1 --address=/web.lab/2001:db8:10::1 \
	--pid-file= >/dev/null 2>&1 &
ip netns exec $gw python3 -m http.server 80 --bind :: --directory "$www" >/dev/null 2>&1 &
sleep 1

ip netns exec $vm tcpdump -i vm0 -w "$out" -U >/dev/null 2>&1 &
tcpdump_pid=$!
sleep 1
ip netns exec $vm ping -c 3 -i 0.2 192.0.2.1 >/dev/null
ip netns exec $vm ping -6 -c 3 -i 0.2 2001:db8:10::1 >/dev/null
ip netns exec $vm curl -4 -s -o /dev/null http://web.lab/
ip netns exec $vm curl -6 -s -o /dev/null http://web.lab/
sleep 1
kill -INT $tcpdump_pid
wait $tcpdump_pid || true
echo "wrote $out"
