# Sourced by bench.sh and bench-upload.sh: a "hypervisor"
# namespace ($hv) and a "sink" namespace ($sk) joined by a veth pair
# ($ifname on both sides), 2001:db8:1::1 and ::2, neighbours resolved;
# removed on exit. Set hv, sk and ifname first.
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
ip link add $ifname netns $hv mtu 1600 type veth peer name $ifname netns $sk mtu 1600
i=1
for ns in $hv $sk; do
	ip -n $ns link set lo up
	ip -n $ns addr add 2001:db8:1::$i/64 dev $ifname nodad
	ip -n $ns link set $ifname up
	i=$((i + 1))
done
until ip netns exec $hv ping -c1 -W1 2001:db8:1::2 >/dev/null 2>&1; do sleep 0.1; done

# ready PID ERRFILE: waits until the capture PID, whose standard error goes
# to ERRFILE, says it captures: sinkd logs "capturing" once its sockets or
# rings take packets, tcpdump "listening on". A fixed sleep is not enough
# on a loaded machine. Fails when PID exits first or stays silent for 60 s.
# Empty ERRFILE before starting PID: the child truncates it only once it
# runs, and a line of an earlier run would pass.
ready() {
	local pid=$1 err=$2 i
	for ((i = 0; i < 1200; i++)); do
		grep -qE 'msg=capturing|listening on' "$err" 2>/dev/null && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$err: the capture exited before it captured:" >&2
			cat "$err" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "$err: the capture did not say it captures within 60 s" >&2
	return 1
}
