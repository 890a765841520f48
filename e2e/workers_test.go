package e2e

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/internal/testkit"
)

// flowFrames returns flows inner TCP conversations of per frames each,
// interleaved, the odd frames of each in the reverse direction. Each frame
// carries its flow and its number within the flow.
func flowFrames(t *testing.T, flows, per int) [][]byte {
	t.Helper()
	var frames [][]byte
	for seq := range per {
		for f := range flows {
			a, b := netip.AddrFrom4([4]byte{10, 0, byte(f / 200), byte(f%200 + 1)}), netip.AddrFrom4([4]byte{10, 1, 0, 1})
			sport, dport := uint16(1000+f), uint16(443)
			if seq%2 == 1 {
				a, b, sport, dport = b, a, dport, sport
			}
			payload := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(f)), uint32(seq))
			frame := testkit.Frame{SrcIP: a, DstIP: b, Proto: layers.IPProtocolTCP, SrcPort: sport, DstPort: dport, Payload: payload}.Bytes(t)
			frames = append(frames, frame)
		}
	}
	return frames
}

// checkWorkerFiles reads each worker's files (in the order written) with
// capinfos, tcpdump and tshark, and checks that every flow of flowFrames is
// in exactly one worker's files, all its frames in order, loops times
// over; it returns the packets per worker.
func checkWorkerFiles(t *testing.T, workers [][]string, flows, per, loops int) []int {
	t.Helper()
	home := map[uint32]int{}
	next := map[uint32]int{}
	counts := make([]int, len(workers))
	for w, files := range workers {
		for _, name := range files {
			frames := readFrames(t, name)
			checkWithTools(t, name, len(frames))
			counts[w] += len(frames)
			for _, fr := range frames {
				p := fr[len(fr)-8:]
				f, seq := binary.BigEndian.Uint32(p), int(binary.BigEndian.Uint32(p[4:]))
				if v, ok := home[f]; ok && v != w {
					t.Fatalf("flow %d is in the files of workers %d and %d", f, v, w)
				}
				home[f] = w
				if want := next[f] % per; seq != want {
					t.Fatalf("flow %d in %s: frame %d where %d was due", f, name, seq, want)
				}
				next[f]++
			}
		}
	}
	for f := range uint32(flows) {
		if next[f] != per*loops {
			t.Errorf("flow %d: %d frames written, want %d", f, next[f], per*loops)
		}
	}
	return counts
}

// TestWorkers: sinkd --workers 2 over a veth, on its UDP socket and with
// -i, one sender (one outer address and port) carrying 64 inner flows,
// plus envelopes the filter rejects and broken ones. Every scrape of
// /metrics adds up while they flow; each flow ends up in one worker's
// files, in order, both workers get some, and the files, the summary and
// what was sent agree.
func TestWorkers(t *testing.T) {
	for _, tc := range []struct {
		name, group string
		args        []string
	}{
		{"udp", "SO_REUSEPORT group", nil},
		{"interface", "PACKET_FANOUT group", []string{"-i", "e2e0"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testWorkers(t, tc.group, tc.args...) })
	}
}

func testWorkers(t *testing.T, group string, args ...string) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	dir := t.TempDir()
	const flows, per, loops = 64, 40, 8
	flowFile := testkit.WritePcap(t, flowFrames(t, flows, per))
	short := make([][]byte, 100)
	for i := range short {
		short[i] = make([]byte, 10)
	}
	shortFile := testkit.WritePcap(t, short)
	d := startSinkd(t, sk, append(args, "--workers", "2", "-w", filepath.Join(dir, "out.pcap"), "-C", "100k", "tcp and net 10.0.0.0/8")...)
	if !strings.Contains(d.stderr.String(), group) {
		t.Errorf("the log does not say how it receives:\n%s", d.stderr)
	}
	senders := []*exec.Cmd{
		hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", fmt.Sprint(loops), "--pps", "10000", flowFile),
		hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "10", "--pps", "1000", vmTraffic), // not 10/8: filtered
		hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "5", "--pps", "500", shortFile),   // malformed
	}
	scrapeWhileSending(t, d, senders)
	sent := flows*per*loops + 10*74 + 5*100
	m := d.waitMetric(t, "sinkd_packets_written_total", float64(flows*per*loops))
	identity(t, m)
	for _, k := range []string{`sinkd_packets_malformed_total{reason="short_frame"}`, "sinkd_packets_filtered_total"} {
		if m[k] == 0 {
			t.Errorf("%s is 0: the load lacks a case", k)
		}
	}
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sum := summed(stderr)
	// -i also sees the namespace's own traffic (neighbour discovery, MLD):
	// skipped, not envelopes.
	if sum["received"] != sent+sum["skipped,"] || sum["captured"]+sum["malformed"]+sum["filtered"] != sent {
		t.Errorf("the summary does not add up to %d received:\n%s", sent, stderr)
	}
	// Rotation at 100 kB: each worker has files of its own.
	var files [][]string
	for w := range 2 {
		names, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("out-w%d.pcap*", w)))
		if len(names) < 2 {
			t.Errorf("worker %d wrote %v, want rotated files", w, names)
		}
		// FILE, FILE1, FILE2, ... FILE10: in the order written.
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
		files = append(files, names)
	}
	counts := checkWorkerFiles(t, files, flows, per, loops)
	if counts[0] == 0 || counts[1] == 0 {
		t.Errorf("packets per worker: %v", counts)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != sum["captured"] {
		t.Errorf("the files hold %d packets, the summary says %d captured", total, sum["captured"])
	}
	t.Logf("packets per worker: %v", counts)
}
