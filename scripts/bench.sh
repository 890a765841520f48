#!/usr/bin/env bash
# make bench: sinkd's hot path in Go benchmarks, then sinkd and tcpdump -w
# capturing the same stream side by side. A "hypervisor" namespace sends
# the envelopes with dpcap replay over a veth to a "sink" namespace where
# sinkd (UDP socket) and tcpdump (AF_PACKET on the veth) both capture them.
# Both get a 64 MiB buffer. Needs root.
# Then the receiver's own limit: envelopes queued while sinkd (UDP, -i; one
# worker and --workers 2) and tcpdump -w are stopped (SIGSTOP), and the CPU
# and wall time each takes to drain them;
# and the loss curve as more senders join. Then live viewers (sinkd
# --live): sinkd's CPU per packet with 0, 1 and 4 viewers and a stalled
# one on the same stream, the files unchanged, and the latency from an
# envelope's arrival to the viewer. Then offline conversion: sinkd
# -r against editcap -C 62 and cat on the same 600 MB file. Last, the
# software backend, and the hypervisor CPU per mirrored packet of its
# kernel (BPF) and AF_PACKET mirrors. Then captures in object storage
# (scripts/bench-upload.sh): upload throughput, live capture with uploads
# running, dpcap fetch against mergecap + tshark.
#   BENCH_PACKETS  packets per rate (default 300000)
#   BENCH_RATES    packets/s to try; 0 = as fast as dpcap replay sends
#   BENCH_DRAIN    envelopes queued for the drain test (default 100000)
#   BENCH_ONLY     the sections to run, of: go live drain loss viewers
#                  offline software mirror upload (default all), e.g.
#                  "drain mirror" to repeat those when the machine is quiet
#   BENCH_SENDERS  sender counts for the loss curve (default "1 2 4")
#   BENCH_OFFLINE  envelopes in the offline file (default 1550000, 600 MB)
#   BENCH_OFFLINE_ROUNDS  rounds of the offline contenders (default 5)
#   BENCH_VIEWER_RATES, BENCH_VIEWER_ROUNDS  the viewers' CPU comparison
#                  (default "100000 0": $BENCH_PACKETS at 100000/s and as
#                  fast as dpcap replay sends; 3 rounds)
#   BENCH_VIEWER_CASES  its cases (default "0 1 4 stalled"; 0 must be one)
#   BENCH_VIEWER_WARM  envelopes sent before each measured run (default
#                  50000; 0 none): a stalled viewer's queue fills by then
#   BENCH_LATENCY_RATES  packets/s of the latency runs (default
#                  "10000 100000"; 5 s of packets each, 3 rounds; "" none)
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
# The live taps' batches come from a pool that 20000 frames do not warm
# (440-510 ns/op then, 30 ns/op after a second): their own benchtime.
go test -tags libpcap -run '^$' -bench . -benchmem ./decap ./filter ./sink/live | grep -E '^Benchmark'
echo
fi

hv=dpcap-bench-hv sk=dpcap-bench-sk ifname=b0
# The namespaces, for the sections that send packets.
if only live || only drain || only loss || only viewers || only software || only mirror; then
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

if only viewers; then
go build -o bin/tools/ ./internal/cmd/live-probe
vrates=${BENCH_VIEWER_RATES:-"100000 0"}
vrounds=${BENCH_VIEWER_ROUNDS:-3}
vwarm=${BENCH_VIEWER_WARM:-50000}
stream=http://127.0.0.1:9311/v1/stream
# metric NAME: sinkd's metric NAME, summed over its labels.
metric() {
	ip netns exec $sk curl -sf --noproxy '*' http://127.0.0.1:9312/metrics |
		awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}
# probe_field LINE KEY: the value after KEY in a live-probe line.
probe_field() { awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' <<<"$1"; }
# live_sinkd: sinkd writing $out/viewers.pcap with --live on the sink's
# loopback; sets spid once it captures. A stalled viewer stays for the
# whole run (--live-write-timeout would end its stream after 10 s: on a
# loaded machine a run can take that long).
live_sinkd() {
	rm -f "$out/viewers.pcap"
	: >"$out/viewers-sinkd.err"
	ip netns exec $sk bin/sinkd --listen 2001:db8:1::2 -w "$out/viewers.pcap" --metrics-addr 127.0.0.1:9312 \
		--live 127.0.0.1:9311 --live-write-timeout 10m 2>"$out/viewers-sinkd.err" &
	spid=$!
	ready $spid "$out/viewers-sinkd.err"
}
# wait_viewers N PID...: waits until sinkd counts N viewers connected
# (sinkd_live_viewers); fails when a viewer PID exits first or after 60 s.
wait_viewers() {
	local n=$1 i p
	shift
	for ((i = 0; i < 1200; i++)); do
		[ "$(metric sinkd_live_viewers)" = "$n" ] && return 0
		for p in "$@"; do
			if ! kill -0 "$p" 2>/dev/null; then
				echo "viewers: viewer $p exited before sinkd counted it" >&2
				return 1
			fi
		done
		sleep 0.05
	done
	echo "viewers: sinkd did not count $n viewers within 60 s (it counts $(metric sinkd_live_viewers))" >&2
	return 1
}
# replay_at RATE COUNT: dpcap replay sends COUNT envelopes at RATE/s (0:
# as fast as it can) from testdata/vm-traffic.pcap to sinkd.
replay_at() {
	local pps_flag=()
	[ "$1" != 0 ] && pps_flag=(--pps "$1")
	ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$2" "${pps_flag[@]}" \
		testdata/vm-traffic.pcap 2>"$out/replay.err"
}
# viewers_run CASE RATE ROUND: one run of CASE (0, 1 or 4 viewers, or
# "stalled": one viewer stopped with SIGSTOP) with curl as the viewers;
# appends a line to viewers-runs.txt and prints it.
viewers_run() {
	local c=$1 rate=$2 r=$3 n=$1 stalled=0 vpids=() i c0 c1 w0 d0 s0 l0 cap drops fsent flost view=()
	[ "$c" = stalled ] && n=1 stalled=1
	rm -f "$out"/viewer-*.pcapng
	live_sinkd
	for ((i = 1; i <= n; i++)); do
		ip netns exec $sk curl -sN --noproxy '*' -o "$out/viewer-$i.pcapng" "$stream" &
		vpids+=($!)
	done
	wait_viewers "$n" "${vpids[@]}"
	[ $stalled = 1 ] && kill -STOP "${vpids[0]}"
	# Not measured: a stalled viewer's queue and socket buffers fill (once
	# per stall, bounded by --live-queue), the live ones' batches warm up.
	if [ "$vwarm" != 0 ]; then
		replay_at 0 "$vwarm"
		cpu_settled $spid >/dev/null
	fi
	w0=$(metric sinkd_packets_written_total) d0=$(metric sinkd_socket_drops_total)
	s0=$(metric sinkd_live_frames_sent_total) l0=$(metric sinkd_live_frames_lost_total)
	c0=$(cpu $spid)
	replay_at "$rate" "$packets"
	c1=$(cpu_settled $spid)
	cap=$(($(metric sinkd_packets_written_total) - w0)) drops=$(($(metric sinkd_socket_drops_total) - d0))
	fsent=$(($(metric sinkd_live_frames_sent_total) - s0)) flost=$(($(metric sinkd_live_frames_lost_total) - l0))
	[ $stalled = 1 ] && kill -CONT "${vpids[0]}"
	kill -TERM $spid
	wait $spid || true
	wait "${vpids[@]}" || true
	for ((i = 1; i <= n; i++)); do
		local v
		v=$(bin/tools/live-probe -r "$out/viewer-$i.pcapng" 2>/dev/null || echo "packets - lost - cut - sha256 -")
		view+=("$(probe_field "$v" packets)/$(probe_field "$v" lost)/$(probe_field "$v" sha256 | cut -c1-12)")
	done
	local f label=$rate line
	f=$(bin/tools/live-probe -r "$out/viewers.pcap")
	[ "$rate" = 0 ] && label="max($(awk '/^sent/ {print $(NF-1)}' "$out/replay.err" | tr -d '('))"
	line="$r $rate $label $c $(awk '/^sent/ {print $2}' "$out/replay.err") $cap $drops $(echo "$c1 - $c0" | bc -l)"
	line+=" $fsent $flost $(probe_field "$f" sha256 | cut -c1-12) ${view[*]:--}"
	echo "$line" >>"$out/viewers-runs.txt"
	echo "$line"
}
echo
echo "== live viewers: sinkd -w FILE --live 127.0.0.1:9311 with 0, 1 and 4 viewers (curl -sN) and one stalled (SIGSTOP)"
echo "   $packets envelopes per run from testdata/vm-traffic.pcap; $vrounds rounds, the cases in turn, each round starting with the next;"
echo "   each run first sends $vwarm envelopes as fast as it can, not measured (the stalled viewer's queue fills)"
echo "   captured, drops, cpu, live-sent and live-lost: of the measured envelopes (sinkd's metrics)"
echo "   viewers: frames in each viewer's stream (all runs' envelopes) / lost at the sink for it (its last ISB) / its frames' hash"
printf '%s\n' "round rate label case sent captured kernel-drops cpu-s live-sent live-lost file-hash viewers..."
: >"$out/viewers-runs.txt"
cases=(${BENCH_VIEWER_CASES:-0 1 4 stalled})
for r in $(seq "$vrounds"); do
	for rate in $vrates; do
		for i in "${!cases[@]}"; do
			viewers_run "${cases[(r + i) % ${#cases[@]}]}" "$rate" "$r"
		done
	done
done
python3 - "$out/viewers-runs.txt" "${cases[@]}" <<'PY'
import statistics, sys
runs = {}
labels = {}
for line in open(sys.argv[1]):
    f = line.split()
    r, rate, label, case, sent, cap, drops, cpu, fsent, flost, fhash = f[:11]
    views = [v.split("/") for v in f[11:] if v != "-"]
    labels.setdefault(rate, []).append(label)
    runs[rate, case, int(r)] = dict(sent=int(sent), cap=int(cap), drops=int(drops or 0), cpu=float(cpu),
                                    fsent=int(fsent), flost=int(flost), fhash=fhash, views=views)
print()
print("medians over the rounds; ns/pkt = sinkd's CPU (user+system, from the measured replay's start until sinkd settles) per packet captured;")
print("x0 = ns/pkt over the 0-viewer run's of the same round (median of the rounds); same file = the file's frames hash as")
print("the 0-viewer run's of the same round; viewers = frames each got (min), lost at the sink (sum, sinkd_live_frames_lost_total)")
print(f"{'rate pps':16s} {'viewers':8s} {'sent':>7s} {'captured':>8s} {'drops':>6s} {'cpu s':>6s} {'ns/pkt':>7s} {'x0':>5s} "
      f"{'frames got':>10s} {'lost':>7s} {'= file':>6s} {'same file':>9s}")
for rate in dict.fromkeys(r for r, _, _ in runs):
    rs = sorted({r for (x, _, r) in runs if x == rate})
    label = statistics.median_low(labels[rate]) if rate != "0" else "max"
    for case in sys.argv[2:]:
        rr = [runs[rate, case, r] for r in rs if (rate, case, r) in runs]
        med = lambda k: statistics.median(x[k] for x in rr)
        ns = [x["cpu"] / x["cap"] * 1e9 for x in rr if x["cap"]]
        x0 = [runs[rate, case, r]["cpu"] / runs[rate, case, r]["cap"] / (runs[rate, "0", r]["cpu"] / runs[rate, "0", r]["cap"])
              for r in rs if runs[rate, "0", r]["cpu"] > 0 and runs[rate, case, r]["cap"] and runs[rate, "0", r]["cap"]]
        got = [min(int(v[0]) for v in x["views"]) for x in rr if x["views"] and all(v[0] != "-" for v in x["views"])]
        asfile = sum(all(v[2] == x["fhash"] for v in x["views"]) for x in rr if x["views"])
        same = sum(x["fhash"] == runs[rate, "0", r]["fhash"] for r, x in zip(rs, rr))
        print(f"{label:16s} {case:8s} {med('sent'):7.0f} {med('cap'):8.0f} {med('drops'):6.0f} {med('cpu'):6.2f} "
              f"{statistics.median(ns):7.0f} {statistics.median(x0):5.2f} "
              f"{(f'{statistics.median(got):.0f}' if got else '-'):>10s} {med('flost'):7.0f} "
              f"{(f'{asfile}/{len(rr)}' if case != '0' else '-'):>6s} {same}/{len(rr):<7d}")
PY
echo "= file: runs in which every viewer's frames hash as the file's (a stalled viewer's cannot: it lost frames)."

# The latency: one live-probe viewer, alone and beside a stalled curl.
echo
echo "== latency from an envelope's arrival (the kernel's receive time sinkd stamps) to the viewer (live-probe)"
printf '%-10s %-14s %6s %8s %6s %9s %9s %9s\n' "rate pps" "viewers" "round" "frames" "lost" "median us" "p99 us" "max us"
: >"$out/latency-runs.txt"
for r in $(seq "$vrounds"); do
	for rate in ${BENCH_LATENCY_RATES-10000 100000}; do
		for c in probe probe+stalled; do
			live_sinkd
			lpids=()
			ip netns exec $sk bin/tools/live-probe "$stream" >"$out/probe.out" 2>"$out/probe.err" &
			lpids+=($!)
			if [ $c = probe+stalled ]; then
				ip netns exec $sk curl -sN --noproxy '*' -o /dev/null "$stream" &
				lpids+=($!)
			fi
			wait_viewers ${#lpids[@]} "${lpids[@]}"
			[ $c = probe+stalled ] && kill -STOP "${lpids[1]}"
			replay_at "$rate" $((rate * 5 < packets ? rate * 5 : packets))
			cpu_settled $spid >/dev/null
			[ $c = probe+stalled ] && kill -CONT "${lpids[1]}"
			kill -TERM $spid
			wait $spid || true
			wait "${lpids[@]}" || true
			p=$(cat "$out/probe.out")
			[ -n "$p" ] || { cat "$out/probe.err" >&2; exit 1; }
			printf '%-10s %-14s %6s %8s %6s %9s %9s %9s\n' "$rate" "$c" "$r" "$(probe_field "$p" packets)" "$(probe_field "$p" lost)" \
				"$(probe_field "$p" median)" "$(probe_field "$p" p99)" "$(probe_field "$p" max)"
			echo "$rate $c $(probe_field "$p" median) $(probe_field "$p" p99)" >>"$out/latency-runs.txt"
		done
	done
done
python3 - "$out/latency-runs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    rate, c, med, p99 = line.split()
    runs.setdefault((rate, c), []).append((int(med), int(p99)))
for (rate, c), v in runs.items():
    print(f"{rate:>7s} pps, {c:14s}: median {statistics.median(x[0] for x in v):.0f} us, p99 {statistics.median(x[1] for x in v):.0f} us (medians of the rounds)")
PY
rm -f "$out"/viewer-*.pcapng "$out/viewers.pcap"
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
