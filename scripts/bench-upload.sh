#!/usr/bin/env bash
# Part of make bench: captures in object storage. A MinIO server runs in
# the sink namespace on loopback (the pinned build 'make test-deps'
# installs); sinkd uploads to it. Three comparisons:
#   1. upload throughput: sinkd -r converting a 600 MB file into 64 MB
#      files and uploading each as it closes (until the store has verified
#      the last one), against cp of the same files and the conversion alone;
#   2. live capture with and without uploads running: packets captured and
#      dropped by the kernel at the same rates;
#   3. dpcap fetch of one port's packets in a 1 s window out of ~1 GB of
#      rotated pcapng (from the directory and from the bucket), against
#      mergecap + tshark -Y doing the same job by hand.
# Needs root. Environment:
#   BENCH_OFFLINE        envelopes in the file for 1 (default 1550000, 600 MB)
#   BENCH_UPLOAD_LIVE    packets per live run (default 600000)
#   BENCH_UPLOAD_RATES   packets/s for 2; 0 = as fast as dpcap replay sends
#   BENCH_FETCH          envelopes behind the fetch files (default 2800000)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out/upload
rm -rf "$out"
mkdir -p "$out"
hv=dpcap-bench-uhv sk=dpcap-bench-usk ifname=u0
. scripts/netns.sh

go build -o bin/tools/ ./internal/cmd/s3-make-bucket
minio=$(command -v minio || echo "$(go env GOPATH)/bin/minio")
export AWS_ACCESS_KEY_ID=dpcapbench AWS_SECRET_ACCESS_KEY=dpcapbench-secret AWS_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
ep=http://127.0.0.1:9123
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
	ip netns exec $sk "$minio" server --quiet --address 127.0.0.1:9123 "$out/minio-data" >"$out/minio.log" 2>&1 &
mpid=$!
for _ in $(seq 300); do
	ip netns exec $sk bin/tools/s3-make-bucket --endpoint $ep bench 2>/dev/null && break
	sleep 0.2
done
upload=(--upload-endpoint $ep --upload-path-style --upload-wait 10m)
secs() { echo "$2 - $1" | bc -l; }
mb() { du -sb "$1" | awk '{print $1 / 1e6}'; }

offline=${BENCH_OFFLINE:-1550000}
big=bench-out/offline-$offline.pcap
[ -f "$big" ] || python3 scripts/make-bench-input.py "$big" "$offline"
cat "$big" >/dev/null
echo "== upload throughput: $big ($(($(stat -c %s "$big") / 1000000)) MB of envelopes) converted into 64 MB files"
mkdir -p "$out/conv"
t0=$(date +%s.%N)
bin/sinkd -r "$big" -w "$out/conv/cap.pcap" -C 64m 2>/dev/null
t1=$(date +%s.%N)
t_conv=$(secs "$t0" "$t1")
size=$(mb "$out/conv")
files=$(ls "$out/conv" | wc -l)
mkdir -p "$out/cp"
t0=$(date +%s.%N)
cp "$out"/conv/* "$out/cp/"
sync -f "$out/cp"
t1=$(date +%s.%N)
t_cp=$(secs "$t0" "$t1")
mkdir -p "$out/up"
t0=$(date +%s.%N)
ip netns exec $sk bin/sinkd -r "$big" -w "$out/up/cap.pcap" -C 64m --upload s3://bench/throughput \
	--upload-sink-id throughput "${upload[@]}" 2>"$out/up.err"
t1=$(date +%s.%N)
t_up=$(secs "$t0" "$t1")
grep -q "wait in" "$out/up.err" && { echo "uploads left waiting:"; cat "$out/up.err"; exit 1; }
printf '%-44s %8s %8s\n' "" "wall s" "MB/s"
printf '%-44s %8.2f %8.0f\n' "sinkd -r (conversion only)" "$t_conv" "$(echo "$size / $t_conv" | bc -l)"
printf '%-44s %8.2f %8.0f\n' "cp of its $files files + sync" "$t_cp" "$(echo "$size / $t_cp" | bc -l)"
printf '%-44s %8.2f %8.0f\n' "sinkd -r --upload (until the last is verified)" "$t_up" "$(echo "$size / $t_up" | bc -l)"
grep "files uploaded" "$out/up.err"
printf 'uploading takes %.2fx the time of cp + sync (MinIO fsyncs and hashes each part; the store, sinkd and\n' \
	"$(echo "$t_up / $t_cp" | bc -l)"
echo "the copy share the same two cores and disk)"
rm -rf "$out/conv" "$out/cp" "$out/up"

live=${BENCH_UPLOAD_LIVE:-600000}
echo
echo "== live capture with uploads running: $live envelopes per run (testdata/vm-traffic.pcap, 309 B average), -C 32m"
printf '%-10s %-8s %9s %9s %7s %9s %8s\n' "rate pps" "uploads" "sent" "captured" "drops" "files up" "cpu s"
rates=${BENCH_UPLOAD_RATES:-50000 100000 0}
for rate in $rates; do
	for mode in off on; do
		rm -rf "$out/live"
		mkdir -p "$out/live"
		args=(--listen 2001:db8:1::2 -w "$out/live/cap.pcap" -C 32m --metrics-addr "")
		[ $mode = on ] && args+=(--upload "s3://bench/live-$rate" --upload-sink-id "live-$rate" "${upload[@]}")
		: >"$out/live.err"
		ip netns exec $sk bin/sinkd "${args[@]}" 2>"$out/live.err" &
		spid=$!
		ready $spid "$out/live.err"
		pps_flag=()
		[ "$rate" != 0 ] && pps_flag=(--pps "$rate")
		ip netns exec $hv bin/dpcap replay --sink "[2001:db8:1::2]:3010" --loop 0 --count "$live" "${pps_flag[@]}" \
			testdata/vm-traffic.pcap 2>"$out/replay.err"
		sleep 1
		c=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$spid/stat")
		kill -TERM $spid
		wait $spid || true
		label=$rate
		[ "$rate" = 0 ] && label="max($(awk '/^sent/ {print $(NF-1)}' "$out/replay.err" | tr -d '('))"
		up=$(awk '/files uploaded/ {print $1}' "$out/live.err")
		printf '%-10s %-8s %9s %9s %7s %9s %8s\n' "$label" "$mode" "$(awk '/^sent/ {print $2}' "$out/replay.err")" \
			"$(grep -m1 'packets captured' "$out/live.err" | awk '{print $1}')" \
			"$(grep -m1 'dropped by kernel' "$out/live.err" | awk '{print $1}')" "${up:--}" "$c"
	done
done
echo "files up = files the store verified by the end of the run (the last one at exit); cpu = sinkd's, uploads included."

fetchn=${BENCH_FETCH:-2800000}
echo
echo "== dpcap fetch: vm-1's packets of the middle half of $fetchn envelopes (two ports) in 100 MB pcapng files"
python3 scripts/make-bench-input.py "$out/tagged.pcap" "$fetchn" 2
printf '{"version": 2, "ports": [{"name": "vm-1", "source": "2001:db8::10", "tag": 1}, %s]}\n' \
	'{"name": "vm-2", "source": "2001:db8::10", "tag": 2}' >"$out/ports.json"
mkdir -p "$out/files"
ip netns exec $sk bin/sinkd -r "$out/tagged.pcap" -F pcapng -C 100m --port-map "$out/ports.json" -w "$out/files/cap.pcapng" \
	--upload s3://bench/fetch --upload-sink-id fetch "${upload[@]}" 2>"$out/files.err"
rm -f "$out/tagged.pcap"
fsize=$(mb "$out/files")
cat "$out"/files/* >/dev/null
# The input's packets are 1 us apart from 1700000000 (2023-11-14T22:13:20Z):
# the window is the middle half.
e_from=$(echo "1700000000 + $fetchn / 4000000" | bc -l) e_to=$(echo "1700000000 + 3 * $fetchn / 4000000" | bc -l)
from=$(date -u -d "@$e_from" +%Y-%m-%dT%H:%M:%S.%NZ) to=$(date -u -d "@$e_to" +%Y-%m-%dT%H:%M:%S.%NZ)
t0=$(date +%s.%N)
bin/dpcap fetch "$out/files" --port vm-1 --from $from --to $to -w "$out/fetch-dir.pcapng" 2>"$out/fetch-dir.err"
t1=$(date +%s.%N)
t_dir=$(secs "$t0" "$t1")
t0=$(date +%s.%N)
ip netns exec $sk bin/dpcap fetch s3://bench/fetch --endpoint $ep --path-style --port vm-1 --from $from --to $to \
	-w "$out/fetch-s3.pcapng" 2>"$out/fetch-s3.err"
t1=$(date +%s.%N)
t_s3=$(secs "$t0" "$t1")
t0=$(date +%s.%N)
mergecap -w "$out/merged.pcapng" "$out"/files/*
tshark -r "$out/merged.pcapng" -Y "frame.interface_name == \"vm-1\" && frame.time_epoch >= $e_from && frame.time_epoch < $e_to" \
	-w "$out/fetch-tshark.pcapng" 2>/dev/null
t1=$(date +%s.%N)
t_tshark=$(secs "$t0" "$t1")
count() { capinfos -c -M "$1" | awk '/Number of packets/ {print $NF}'; }
printf '%-44s %8s %10s\n' "" "wall s" "packets"
printf '%-44s %8.2f %10s\n' "dpcap fetch DIR ($(printf '%.0f' "$fsize") MB in $(ls "$out/files" | wc -l) files)" "$t_dir" "$(count "$out/fetch-dir.pcapng")"
printf '%-44s %8.2f %10s\n' "dpcap fetch s3://bench/fetch" "$t_s3" "$(count "$out/fetch-s3.pcapng")"
printf '%-44s %8.2f %10s\n' "mergecap + tshark -Y" "$t_tshark" "$(count "$out/fetch-tshark.pcapng")"
grep "packets of" "$out/fetch-s3.err"
printf 'dpcap fetch is %.1fx faster than mergecap + tshark from the directory, %.1fx from the bucket\n' \
	"$(echo "$t_tshark / $t_dir" | bc -l)" "$(echo "$t_tshark / $t_s3" | bc -l)"
# MinIO stopped first: it writes into its data directory to the end, and
# removing that under it fails ("Directory not empty").
kill $mpid && wait $mpid 2>/dev/null || true
rm -rf "$out/files" "$out/merged.pcapng" "$out/minio-data"
