#!/usr/bin/env bash
# make bench: sinkd's hot path in Go benchmarks, then sinkd and tcpdump -w
# capturing the same stream side by side. A "hypervisor" namespace sends
# the envelopes with dpcap replay over a veth to a "sink" namespace where
# sinkd (UDP socket) and tcpdump (AF_PACKET on the veth) both capture them.
# Both get a 64 MiB buffer. Needs root.
# Then the receiver's own limit: envelopes queued while sinkd (UDP, -i; one
# worker and --workers 2) and tcpdump -w are stopped (SIGSTOP), and the CPU
# and wall time each takes to drain them;
# and the loss curve as more senders join. Then offline conversion: sinkd
# -r against editcap -C 62 and cat on the same 600 MB file. Last, the
# software backend, and the hypervisor CPU per mirrored packet of its
# kernel (BPF) and AF_PACKET mirrors. Then captures in object storage
# (scripts/bench-upload.sh): upload throughput, live capture with uploads
# running, dpcap fetch against mergecap + tshark.
#   BENCH_PACKETS  packets per rate (default 300000)
#   BENCH_RATES    packets/s to try; 0 = as fast as dpcap replay sends
#   BENCH_DRAIN    envelopes queued for the drain test (default 100000)
#   BENCH_ONLY     the sections to run, of: go live drain loss offline
#                  software mirror upload (default all), e.g. "drain mirror"
#                  to repeat those when the machine is quiet
#   BENCH_SENDERS  sender counts for the loss curve (default "1 2 4")
#   BENCH_OFFLINE  envelopes in the offline file (default 1550000, 600 MB)
#   BENCH_OFFLINE_ROUNDS  rounds of the offline contenders (default 5)
#   BENCH_MIRROR_PACKETS, BENCH_MIRROR_PPS, BENCH_MIRROR_ROUNDS  the mirror
#                  CPU comparison (default 300000 frames at 100000/s, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out
packets=${BENCH_PACKETS:-300000}
rates=${BENCH_RATES:-"50000 100000 200000 0"}
mkdir -p "$out"
# only SECTION: whether BENCH_ONLY asks for it (every section when unset).
only() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

if only go; then
echo "== Go benchmarks (allocs/op must be 0 on the hot path)"
go test -tags libpcap -run '^$' -bench . -benchmem -benchtime 20000x ./capture/udp ./sink ./pcapout | grep -E '^Benchmark'
go test -tags libpcap -run '^$' -bench . -benchmem ./decap ./filter | grep -E '^Benchmark'
echo
fi

hv=dpcap-bench-hv sk=dpcap-bench-sk ifname=b0
# The namespaces, for the sections that send packets.
if only live || only drain || only loss || only software || only mirror; then
	. scripts/netns.sh
fi

# cpu PID: user+system seconds the process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# field FILE PATTERN: the number before PATTERN in a summary.
field() { grep -m1 "$2" "$1" | awk '{print $1}'; }

if only live; then
echo "== live capture of the same stream: sinkd vs tcpdump -w ($packets packets per rate from testdata/vm-traffic.pcap: 60-1514 B frames, 309 B average)"
printf '%-10s %9s | %9s %7s %6s | %9s %7s %6s | %8s %8s\n' \
	"rate pps" "sent" "sinkd" "drops" "cpu s" "tcpdump" "drops" "cpu s" "captured" "cpu"
printf '%-10s %9s | %9s %7s %6s | %9s %7s %6s | %8s %8s\n' \
	"" "" "captured" "kernel" "" "captured" "kernel" "" "ratio" "ratio"
# start_pair: sinkd (UDP) and tcpdump -w on the sink, both 64 MiB; sets
# spid and tpid.
start_pair() {
	rm -f "$out"/sinkd.pcap "$out"/tcpdump.pcap
	: >"$out/sinkd.err"; : >"$out/tcpdump.err" # ready must not read the last run's line
	ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 -w "$out/sinkd.pcap" --metrics-addr "" 2>"$out/sinkd.err" &
	spid=$!
	ip netns exec $sk tcpdump -i b0 -B 65536 -w "$out/tcpdump.pcap" 'udp dst port 3010' 2>"$out/tcpdump.err" &
	tpid=$!
	ready $spid "$out/sinkd.err"
	ready $tpid "$out/tcpdump.err"
}
for rate in $rates; do
	start_pair
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
fi

# cpu_settled PID: wait until PID's CPU time stops moving (3 looks 0.3 s
# apart; tcpdump hands over its last ring block after 1 s) with none of its
# threads runnable (on a loaded machine, a process waiting for a CPU does
# not move either), print it.
cpu_settled() {
	local last=-1 now same=0
	while [ $same -lt 3 ]; do
		sleep 0.3
		now=$(cpu "$1")
		if [ "$now" = "$last" ] && ! awk '{print $3}' /proc/"$1"/task/*/stat | grep -q R; then
			same=$((same + 1))
		else
			same=0
		fi
		last=$now
	done
	echo "$now"
}
if only drain; then
# drain_row NAME ERRFILE QUEUED CPU WALL: captured and kernel drops from a
# summary, CPU per packet, and the drain's wall-clock rate.
drain_row() {
	local name=$1 err=$2 n=$3 c=$4 w=$5
	local cap drops
	cap=$(field "$err" "packets captured")
	drops=$(field "$err" "dropped by kernel")
	printf '%-22s %9s %9s %8s %7s %12s %10s %7s %11s\n' "$name" "$n" "$cap" "${drops:-0}" "$c" \
		"$(awk -v p="$cap" -v c="$c" 'BEGIN { if (c > 0) printf "%.0f", p / c; else print "-" }')" \
		"$(awk -v p="$cap" -v c="$c" 'BEGIN { if (p > 0) printf "%.2f", c / p * 1e6; else print "-" }')" \
		"$w" "$(awk -v p="$cap" -v w="$w" 'BEGIN { if (w > 0) printf "%.0f", p / w; else print "-" }')"
}
# The drain's input: 128 inner TCP flows (354-byte frames, 4 per flow),
# so that --workers has flows to spread; vm-traffic.pcap is one
# conversation, which one worker would take whole.
flows=$out/flows.pcap
if [ ! -s "$flows" ]; then
	printf '0000 %s\n' "$(head -c 300 /dev/zero | od -An -tx1 -v | tr -s ' \n' ' ')" >"$out/payload.txt"
	cat "$out/payload.txt" "$out/payload.txt" "$out/payload.txt" "$out/payload.txt" >"$out/payload4.txt"
	for i in $(seq 0 127); do
		text2pcap -q -4 "10.0.$((i / 100)).$((i % 100 + 1)),10.1.0.1" -T "$((1000 + i)),443" "$out/payload4.txt" "$out/flow-$i.pcap" 2>/dev/null
	done
	mergecap -F pcap -a -w "$flows" "$out"/flow-*.pcap
	rm -f "$out"/flow-*.pcap "$out"/payload*.txt
fi
drain=${BENCH_DRAIN:-100000}
echo
echo "== the receiver's limit: $drain envelopes queued while the capture process is stopped (SIGSTOP), then drained (SIGCONT)"
echo "   128 inner flows from one sender; 256 MiB socket buffer or ring each (each worker's); CPU = what the"
echo "   process spent draining (user+system); wall = SIGCONT to the last write (the newest file's mtime:"
echo "   sinkd writes when its queue runs empty; tcpdump only at exit, so none), on a shared machine"
printf '%-22s %9s %9s %8s %7s %12s %10s %7s %11s\n' "capture" "queued" "captured" "drops" "cpu s" "pkts/s/core" "us/packet" "wall s" "pkts/s wall"
for who in sinkd-udp sinkd-udp-workers2 sinkd-i sinkd-i-workers2 tcpdump; do
	rm -f "$out"/drain*.pcap
	: >"$out/drain.err"
	case $who in
	sinkd-udp) ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 --buffer-size 256m -w "$out/drain.pcap" --metrics-addr "" 2>"$out/drain.err" & ;;
	sinkd-udp-workers2) ip netns exec $sk bin/sinkd --workers 2 --listen 2001:db8:1::2 --buffer-size 256m -w "$out/drain.pcap" --metrics-addr "" 2>"$out/drain.err" & ;;
	sinkd-i) ip netns exec $sk bin/sinkd -i b0 --buffer-size 256m -w "$out/drain.pcap" --metrics-addr "" 2>"$out/drain.err" & ;;
	sinkd-i-workers2) ip netns exec $sk bin/sinkd --workers 2 -i b0 --buffer-size 256m -w "$out/drain.pcap" --metrics-addr "" 2>"$out/drain.err" & ;;
	tcpdump) ip netns exec $sk tcpdump -i b0 -B 262144 -w "$out/drain.pcap" 'udp dst port 3010' 2>"$out/drain.err" & ;;
	esac
	pid=$!
	ready $pid "$out/drain.err"
	kill -STOP $pid
	ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$drain" "$flows" 2>"$out/replay.err"
	sleep 0.5
	c0=$(cpu $pid)
	t0=$(date +%s.%N)
	kill -CONT $pid
	c1=$(cpu_settled $pid)
	wall=-
	if [ $who != tcpdump ]; then
		wall=$(stat -c %.9Y "$out"/drain*.pcap | sort -n | tail -1 | awk -v t0="$t0" '{ printf "%.3f", $1 - t0 }')
	fi
	if [ $who = tcpdump ]; then kill -INT $pid; else kill -TERM $pid; fi
	wait $pid || true
	drain_row "$who" "$out/drain.err" "$drain" "$(echo "$c1 - $c0" | bc -l | awk '{printf "%.2f", $1}')" "$wall"
done
echo "tcpdump's ring is filled by the kernel in the sender's softirq (not charged to tcpdump); sinkd's"
echo "UDP socket is copied out by sinkd itself. sinkd writes the inner frames, tcpdump the envelopes."
echo "workers2 = --workers 2: two sockets (or rings), two threads, two files; the kernel steers by inner flow."
fi

if only loss; then
echo
echo "== loss as senders join: each sends $packets envelopes as fast as it can; sinkd (UDP) and tcpdump -w capture"
printf '%-8s %9s %10s | %9s %8s | %9s %8s\n' "senders" "sent" "offered/s" "sinkd" "drops" "tcpdump" "drops"
for k in ${BENCH_SENDERS:-1 2 4}; do
	start_pair
	t0=$(date +%s.%N)
	rpids=()
	for i in $(seq "$k"); do
		ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$packets" \
			testdata/vm-traffic.pcap 2>"$out/replay-$i.err" &
		rpids+=($!)
	done
	wait "${rpids[@]}"
	t1=$(date +%s.%N)
	sleep 2
	kill -TERM $spid
	kill -INT $tpid
	wait $spid $tpid || true
	sent=$(cat "$out"/replay-*.err | awk '/^sent/ {s += $2} END {print s}')
	rm -f "$out"/replay-*.err
	printf '%-8s %9s %10.0f | %9s %8s | %9s %8s\n' "$k" "$sent" "$(echo "$sent / ($t1 - $t0)" | bc -l)" \
		"$(field "$out/sinkd.err" "packets captured")" "$(field "$out/sinkd.err" "dropped by kernel")" \
		"$(field "$out/tcpdump.err" "packets captured")" "$(field "$out/tcpdump.err" "dropped by kernel")"
done
echo "senders share the machine's 2 cores with both receivers: the receivers drop when starved, not only when slow."
fi

if only offline; then
echo
offline=${BENCH_OFFLINE:-1550000}
rounds=${BENCH_OFFLINE_ROUNDS:-5}
big=$out/offline-$offline.pcap
[ -f "$big" ] || python3 scripts/make-bench-input.py "$big" "$offline"
bytes=$(stat -c %s "$big")
cat "$big" >/dev/null # into the page cache, for every contender alike
echo "== offline conversion of $offline envelopes ($((bytes / 1000000)) MB, 60-1514 B frames): $rounds rounds, the three in turn"
echo "   in each, a different one first; every run writes a new file (the last run's removed first: truncating or replacing 500 MB"
echo "   would be timed too) and starts after a sync (not timed: no run pays for another's writeback)"
# offline_run NAME: one run of contender NAME; prints its wall seconds.
offline_run() {
	local o=$out/offline-out-$1.pcap t0 t1
	rm -f "$o"
	sync
	t0=$EPOCHREALTIME
	case $1 in
	sinkd) bin/sinkd -r "$big" -w "$o" ;;
	editcap) editcap -C 62 -F pcap "$big" "$o" ;;
	cat) cat "$big" >"$o" ;;
	esac >/dev/null 2>&1
	t1=$EPOCHREALTIME
	echo "$t1 - $t0" | bc -l
}
: >"$out/offline-runs.txt"
# Each round starts with the next contender, so that none always runs
# after the same one (a run after a large removal is often slower here).
contenders=(sinkd editcap cat)
for r in $(seq "$rounds"); do
	for i in 0 1 2; do
		c=${contenders[(r + i) % 3]}
		echo "$r $c $(offline_run $c)" >>"$out/offline-runs.txt"
	done
done
rm -f "$out"/offline-out-*.pcap
python3 - "$out/offline-runs.txt" "$bytes" "$offline" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r, c, t = line.split()
    runs.setdefault(c, {})[int(r)] = float(t)
size, packets = int(sys.argv[2]), int(sys.argv[3])
names = {"sinkd": "sinkd -r", "editcap": "editcap -C 62", "cat": "cat IN > OUT"}
print(f"{'':14s} {'median s':>8s} {'min-max s':>13s} {'MB/s':>6s} {'packets/s':>10s}   runs (s)")
for c in ("sinkd", "editcap", "cat"):
    t = list(runs[c].values())
    m = statistics.median(t)
    print(f"{names[c]:14s} {m:8.3f} {min(t):6.3f}-{max(t):6.3f} {size / m / 1e6:6.0f} {packets / m:10.0f}   "
          + " ".join(f"{x:.3f}" for x in t))
for what, a, b in (("sinkd -r's time / cat's", "sinkd", "cat"), ("editcap's time / sinkd -r's", "editcap", "sinkd")):
    per = [runs[a][r] / runs[b][r] for r in sorted(runs[a])]
    print(f"{what}: {statistics.median(per):.2f}x (median of the rounds; each round {' '.join(f'{x:.2f}' for x in per)})")
PY
rm -f "$out/offline-runs.txt"
fi

# The software backend: frames arrive on a port (a veth from a "vm"
# namespace), dpcap serve mirrors them to sinkd over the underlay veth.
if only software || only mirror; then
echo
vm=dpcap-bench-vm
ip netns del $vm 2>/dev/null || true
ip netns add $vm
trap 'ip netns del $vm 2>/dev/null || true; cleanup' EXIT
ip link add vm0 netns $vm type veth peer name tap-vm1 netns $hv
ip -n $vm addr add 2001:db8:10::10/64 dev vm0 nodad
ip -n $hv addr add 2001:db8:10::1/64 dev tap-vm1 nodad
ip -n $vm link set lo up
ip -n $vm link set vm0 up
ip -n $hv link set tap-vm1 up
until ip netns exec $vm ping -c1 -W1 2001:db8:10::1 >/dev/null 2>&1; do sleep 0.1; done
fi
if only software; then
sock=$out/dpcap.sock
rm -rf "$out/state" "$sock"
ip netns exec $hv bin/dpcap serve --backend software --port vm-1=tap-vm1 --socket "$sock" --state-dir "$out/state" 2>"$out/serve.err" &
serve=$!
until bin/dpcap status --socket "$sock" >/dev/null 2>&1; do sleep 0.1; done
bin/dpcap start --socket "$sock" --sink-node-ip 2001:db8:1::2 --udp-dst-port 3010 --vf vm-1 >/dev/null
echo "== the software backend: frames into a port, mirrored to sinkd ($packets per rate)"
printf '%-10s %9s %9s %9s %7s %7s %9s\n' "rate pps" "sent" "port rx" "mirrored" "failed" "dropped" "sinkd rx"
for rate in $rates; do
	: >"$out/sinkd.err"
	ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 -w /dev/null --metrics-addr "" 2>"$out/sinkd.err" &
	spid=$!
	ready $spid "$out/sinkd.err"
	st0=$(bin/dpcap status --socket "$sock" -o json)
	rx0=$(ip netns exec $hv cat /sys/class/net/tap-vm1/statistics/rx_packets)
	pps_flag=()
	[ "$rate" != 0 ] && pps_flag=(--pps "$rate")
	ip netns exec $vm bin/dpcap replay --sink "[2001:db8:10::1]:9" --loop 0 --count "$packets" "${pps_flag[@]}" \
		testdata/vm-traffic.pcap 2>"$out/replay.err"
	sleep 1
	st1=$(bin/dpcap status --socket "$sock" -o json)
	rx1=$(ip netns exec $hv cat /sys/class/net/tap-vm1/statistics/rx_packets)
	kill -TERM $spid
	wait $spid || true
	d() { python3 -c "import json,sys; a=json.loads(sys.argv[1])['ports'][0]; b=json.loads(sys.argv[2])['ports'][0]; print(b.get('$1',0)-a.get('$1',0))" "$st0" "$st1"; }
	label=$rate
	[ "$rate" = 0 ] && label="max($(awk '/^sent/ {print $(NF-1)}' "$out/replay.err" | tr -d '('))"
	printf '%-10s %9s %9s %9s %7s %7s %9s\n' "$label" "$(awk '/^sent/ {print $2}' "$out/replay.err")" \
		"$((rx1 - rx0))" "$(d samples)" "$(d failed)" "$(d dropped)" "$(field "$out/sinkd.err" "packets received")"
done
bin/dpcap stop --socket "$sock" >/dev/null
kill -TERM $serve
wait $serve || true
echo "port rx counts everything the port received: the VM's frames, the fragments of those larger than"
echo "its 1500-byte MTU, and its neighbour discovery;"
echo "every frame is mirrored, failed (the underlay socket's buffer full) or dropped (the kernel's queue to the mirror)."
fi

# Hypervisor CPU per mirrored packet, kernel mirror against AF_PACKET. The
# copies go to an address the sink namespace does not own (its neighbour
# entry pinned), which it drops on arrival, so the sink's cost is not in
# the figures. Two measures, each minus the same load with no mirror:
# "machine", the busy time of all CPUs (/proc/stat; it needs a quiet
# machine, and it catches the softirq work that runs while a CPU is idle
# and is charged to no process), and "processes", the VM's sender (whose
# softirq runs the port's receive path, and with it the BPF programs) +
# dpcap serve + ksoftirqd.
if only mirror; then
mp=${BENCH_MIRROR_PACKETS:-300000}
mpps=${BENCH_MIRROR_PPS:-100000}
echo
echo "== hypervisor CPU per mirrored packet: $mp frames into the port at $mpps/s, mirrored by each method"
skmac=$(ip netns exec $sk cat /sys/class/net/b0/address)
ip -n $hv neigh replace 2001:db8:1::99 lladdr "$skmac" dev b0 nud permanent
softirqd() { local s=0; for p in $(pgrep ksoftirqd); do s=$(echo "$s + $(cpu "$p")" | bc -l); done; echo "$s"; }
# busy: the machine's busy CPU seconds so far (user, nice, system, irq,
# softirq of every CPU, /proc/stat). Softirq work that runs while a CPU is
# idle (a veth's receive, often) is charged to no process, only to this.
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }
# mirror_run METHOD: one run; prints mirrored frames, then the sender's,
# serve's and ksoftirqd's CPU seconds.
mirror_run() {
	local method=$1 m=$1 msock=$out/mirror-$1.sock mserve s0 s1 k0 k1 b0 b1 tsend mirrored=0
	rm -rf "$out/mstate-$method" "$msock"
	[ $m = none ] && m=af_packet
	ip netns exec $hv bin/dpcap serve --backend software --mirror $m --port vm-1=tap-vm1 --socket "$msock" \
		--state-dir "$out/mstate-$method" 2>"$out/serve-$method.err" &
	mserve=$!
	until bin/dpcap status --socket "$msock" >/dev/null 2>&1; do sleep 0.1; done
	[ $method != none ] && bin/dpcap start --socket "$msock" --sink-node-ip 2001:db8:1::99 --udp-dst-port 3010 --vf vm-1 >/dev/null
	sleep 0.5
	s0=$(cpu $mserve) k0=$(softirqd) b0=$(busy)
	TIMEFORMAT='%U %S'
	tsend=$( { time ip netns exec $vm bin/dpcap replay --sink "[2001:db8:10::1]:9" --loop 0 --count "$mp" --pps "$mpps" \
		testdata/vm-traffic.pcap 2>/dev/null; } 2>&1 | awk '{printf "%.2f", $1 + $2}')
	sleep 1
	s1=$(cpu $mserve) k1=$(softirqd) b1=$(busy)
	if [ $method = bpf ]; then
		# The kernel's own account of the port program (kernel.bpf_stats_enabled):
		# its run time includes the clone's transmission and the underlay program.
		awk '/^run_time_ns/ {t = $2} /^run_cnt/ {if (t > mt) {mt = t; mc = $2}} END {if (mc > 0) printf "%.0f\n", mt / mc}' \
			/proc/$mserve/fdinfo/* 2>/dev/null >"$out/bpf-ns.txt" || true
	fi
	if [ $method != none ]; then
		mirrored=$(bin/dpcap status --socket "$msock" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ports"][0].get("samples",0))')
		bin/dpcap stop --socket "$msock" >/dev/null
	fi
	kill -TERM $mserve
	wait $mserve || true
	echo "$mirrored $tsend $(echo "$s1 - $s0" | bc -l) $(echo "$k1 - $k0" | bc -l) $(echo "$b1 - $b0" | bc -l)"
}
rounds=${BENCH_MIRROR_ROUNDS:-3}
rm -f "$out/mirror-runs.txt" "$out/bpf-ns.txt"
stats_was=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null || true
printf '%-6s %-10s %9s %9s %9s %9s %9s %9s\n' "round" "mirror" "mirrored" "sender s" "serve s" "softirqd" "total s" "machine s"
for r in $(seq "$rounds"); do
	for method in none af_packet bpf; do
		read -r n a b c m <<<"$(mirror_run $method)"
		total=$(echo "$a + $b + $c" | bc -l)
		printf '%-6s %-10s %9s %9.2f %9.2f %9.2f %9.2f %9.2f\n' "$r" "$method" "$n" "$a" "$b" "$c" "$total" "$m"
		echo "$method $n $total $m" >>"$out/mirror-runs.txt"
	done
done
# Medians over the rounds; CPU per mirrored frame above the no-mirror median.
python3 - "$out/mirror-runs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m, n, procs, machine = line.split()
    runs.setdefault(m, []).append((int(n), float(procs), float(machine)))
per = {}
for col, what in ((2, "machine"), (1, "processes")):
    base = statistics.median(r[col] for r in runs["none"])
    for m in ("af_packet", "bpf"):
        n = statistics.median(r[0] for r in runs[m])
        t = statistics.median(r[col] for r in runs[m])
        per[what, m] = (t - base) / n * 1e6
        print(f"{what:9s} {m:10s} median {t:.2f} s, {t - base:+.2f} s over no mirror for {n:.0f} frames: {per[what, m]:.2f} us per mirrored frame")
for what in ("machine", "processes"):
    if per[what, "bpf"] > 0:
        print(f"AF_PACKET / BPF hypervisor CPU per mirrored frame ({what}): {per[what, 'af_packet'] / per[what, 'bpf']:.1f}x")
    else:
        print(f"the BPF mirror's CPU ({what}) is below this run's noise")
PY
rm -f "$out/mirror-runs.txt"
sysctl -qw kernel.bpf_stats_enabled="$stats_was" 2>/dev/null || true
[ -s "$out/bpf-ns.txt" ] && echo "the kernel's run time of the port program (clone, transmission, envelope; last round): $(cat "$out/bpf-ns.txt") ns per frame"
fi

if only upload; then
echo
bash scripts/bench-upload.sh
fi
