package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/portmap"
)

// The hypervisor of these tests: dp-service on it captures vm-1, vm-2 and
// PF0 and sends every copy untagged from its underlay address.
var (
	vm1MAC   = net.HardwareAddr{0x02, 0x01, 0, 0, 0, 0x01}
	vm2MAC   = net.HardwareAddr{0x02, 0x01, 0, 0, 0, 0x02}
	gwMAC    = net.HardwareAddr{0x02, 0xfe, 0, 0, 0, 0x01} // dp-service's virtual router, as VMs see it
	router   = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01} // the underlay router, PF0's neighbour
	pf0MAC   = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x01}
	hvSource = "2001:db8:1::1"
)

// publishedMap is the map dpcap serve publishes for that hypervisor.
func publishedMap(t *testing.T) string {
	t.Helper()
	m := portmap.Map{Version: portmap.Version, Ports: []portmap.Port{
		{Name: "vm-1", Source: mustAddr(hvSource), Kind: portmap.KindVF, IPv4: mustAddr("10.0.0.1"), IPv6: mustAddr("fd00:1::1"),
			UnderlayRoute: netip.MustParsePrefix("fc00:1:0:1::1/128"), MAC: vm1MAC.String()},
		{Name: "vm-2", Source: mustAddr(hvSource), Kind: portmap.KindVF, IPv4: mustAddr("10.0.0.2"), IPv6: mustAddr("fd00:1::2"),
			UnderlayRoute: netip.MustParsePrefix("fc00:1:0:1::2/128")}, // MAC not learned yet
		{Name: "pf0", Source: mustAddr(hvSource), Kind: portmap.KindPF},
	}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "portmap.json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// vmFrame is a frame a VM sends: TCP over IPv4 or IPv6 from its primary
// address, or an ARP request, through dp-service's virtual router.
func vmFrame(t *testing.T, mac net.HardwareAddr, v4, v6 string, i int) []byte {
	t.Helper()
	payload := gopacket.Payload(fmt.Sprintf("frame %d of %s", i, mac))
	switch i % 3 {
	case 0:
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(v4), DstIP: net.IP{192, 0, 2, 80}}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(40000 + i), DstPort: 443, Seq: uint32(i), ACK: true, PSH: true, Window: 502}
		tcp.SetNetworkLayerForChecksum(ip)
		return testkit.Serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, payload)
	case 1:
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(v6), DstIP: net.ParseIP("2001:db8:53::53")}
		udp := &layers.UDP{SrcPort: layers.UDPPort(50000 + i), DstPort: 53}
		udp.SetNetworkLayerForChecksum(ip)
		return testkit.Serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv6}, ip, udp, payload)
	}
	return testkit.Serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: mac, SourceProtAddress: net.ParseIP(v4).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 254}})
}

// pfFrame is what PF0 receives for a VM: the underlay router's IPv6 frame
// from another hypervisor to the VM's underlay address, carrying the
// overlay packet in IP-in-IPv6 (IPv4) or IPv6-in-IPv6.
func pfFrame(t *testing.T, underlay, v4, v6 string, i int) []byte {
	t.Helper()
	outer := &layers.IPv6{Version: 6, HopLimit: 63, SrcIP: net.ParseIP("2001:db8:ff::7"), DstIP: net.ParseIP(underlay)}
	eth := &layers.Ethernet{SrcMAC: router, DstMAC: pf0MAC, EthernetType: layers.EthernetTypeIPv6}
	payload := gopacket.Payload(fmt.Sprintf("underlay frame %d", i))
	if i%2 == 0 {
		outer.NextHeader = layers.IPProtocolIPv4
		ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 51, 100, 7}, DstIP: net.ParseIP(v4)}
		udp := &layers.UDP{SrcPort: 53, DstPort: layers.UDPPort(50000 + i)}
		udp.SetNetworkLayerForChecksum(ip)
		return testkit.Serialize(t, eth, outer, ip, udp, payload)
	}
	outer.NextHeader = layers.IPProtocolIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("2001:db8:53::53"), DstIP: net.ParseIP(v6)}
	udp := &layers.UDP{SrcPort: 53, DstPort: layers.UDPPort(50000 + i)}
	udp.SetNetworkLayerForChecksum(ip)
	return testkit.Serialize(t, eth, outer, ip, udp, payload)
}

// dpserviceCopies returns, per interface name sinkd should give them, the
// frames dp-service's hypervisor copies, and all of them interleaved in
// the order sent.
func dpserviceCopies(t *testing.T) (map[string][][]byte, [][]byte) {
	want := map[string][][]byte{}
	var all [][]byte
	add := func(name string, f []byte) {
		want[name] = append(want[name], f)
		all = append(all, f)
	}
	for i := range 60 {
		add("vm-1", vmFrame(t, vm1MAC, "10.0.0.1", "fd00:1::1", i))
		if i < 45 {
			add("vm-2", vmFrame(t, vm2MAC, "10.0.0.2", "fd00:1::2", i))
		}
		if i < 30 {
			add("pf0 to vm-1", pfFrame(t, "fc00:1:0:1::1", "10.0.0.1", "fd00:1::1", i))
		}
		if i < 20 {
			add("pf0 to vm-2", pfFrame(t, "fc00:1:0:1::2", "10.0.0.2", "fd00:1::2", i))
		}
		if i < 7 { // a VM the map does not list, and underlay traffic to no VF
			add(hvSource, vmFrame(t, net.HardwareAddr{2, 1, 0, 0, 0, 9}, "10.0.0.9", "fd00:1::9", i))
			add(hvSource, pfFrame(t, "fc00:1:0:1::99", "10.0.0.9", "fd00:1::9", i))
		}
	}
	return want, all
}

// TestUntaggedCopiesNamedByPortMap sends dp-service's untagged copies of
// two VMs and PF0 and checks the pcapng names every frame's port from the
// published map: frame for frame, and as tshark counts frames and bytes.
func TestUntaggedCopiesNamedByPortMap(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want, all := dpserviceCopies(t)
	out := filepath.Join(t.TempDir(), "cap.pcapng")
	d := startSinkd(t, sk, "--port-map", publishedMap(t), "-w", out)
	replay(t, hv, "[2001:db8:1::2]:3010", testkit.WritePcap(t, all))
	d.waitMetric(t, "sinkd_packets_written_total", float64(len(all)))
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := testkit.FramesByInterface(t, out)
	if len(got) != len(want) {
		t.Errorf("interfaces %d, want %d", len(got), len(want))
	}
	for name, frames := range want {
		t.Run(name, func(t *testing.T) { equalFrames(t, got[name], frames) })
	}
	// tshark's view: frames and bytes per interface name.
	b, err := exec.Command("tshark", "-r", out, "-T", "fields", "-E", "separator=/t", "-e", "frame.interface_name", "-e", "frame.len").Output()
	if err != nil {
		t.Fatal(err)
	}
	type tally struct{ frames, bytes int }
	seen := map[string]tally{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, n, _ := strings.Cut(line, "\t")
		l, _ := strconv.Atoi(n)
		s := seen[name]
		seen[name] = tally{s.frames + 1, s.bytes + l}
	}
	for name, frames := range want {
		w := tally{frames: len(frames)}
		for _, f := range frames {
			w.bytes += len(f)
		}
		if seen[name] != w {
			t.Errorf("tshark: interface %q has %+v, want %+v", name, seen[name], w)
		}
	}
	checkWithTools(t, out, len(all))
}

// TestSplitByPort writes one file per port, named from the map.
func TestSplitByPort(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want, all := dpserviceCopies(t)
	dir := t.TempDir()
	d := startSinkd(t, sk, "--port-map", publishedMap(t), "-w", filepath.Join(dir, "cap.pcap"), "--split-by", "port")
	replay(t, hv, "[2001:db8:1::2]:3010", testkit.WritePcap(t, all))
	d.waitMetric(t, "sinkd_packets_written_total", float64(len(all)))
	d.stop(t, syscall.SIGTERM)
	files := map[string]string{"vm-1": "cap-vm-1.pcap", "vm-2": "cap-vm-2.pcap", "pf0 to vm-1": "cap-pf0_to_vm-1.pcap",
		"pf0 to vm-2": "cap-pf0_to_vm-2.pcap", hvSource: "cap-2001_db8_1__1.pcap"}
	if got := testkit.DirNames(t, dir); len(got) != len(files) {
		t.Errorf("files %v, want %v", got, files)
	}
	for name, file := range files {
		path := filepath.Join(dir, file)
		equalFrames(t, readFrames(t, path), want[name])
		checkWithTools(t, path, len(want[name]))
	}
}

// labelled wraps frame in n envelopes from hv to sk over link 1, the i-th
// with flow label first+i, as a sender varying the label would.
func labelled(t *testing.T, hv, sk *testkit.NetNS, frame []byte, first, n int) [][]byte {
	t.Helper()
	var envs [][]byte
	tmpl := decap.Envelope{DstMAC: macOf(t, sk, "e2e0"), SrcMAC: macOf(t, hv, "e2e0"), Src: mustAddr(hvSource),
		Dst: mustAddr("2001:db8:1::2"), SrcPort: 3000, DstPort: 3010}
	for i := range n {
		tmpl.FlowLabel = uint32(first+i) % (decap.MaxFlowLabel + 1)
		b, err := tmpl.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, decap.Encap(nil, &b, frame, true))
	}
	return envs
}

// openFiles counts the file descriptors pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestFlowLabelFloodSplit reproduces issue 11's break 2: 22,000 flow labels
// with --split-by source opened 19,991 files and starved /metrics. Now
// sources stop at --max-sources and the rest share one overflow file.
func TestFlowLabelFloodSplit(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	dir := t.TempDir()
	d := startSinkd(t, sk, "-w", filepath.Join(dir, "cap.pcap"), "--split-by", "source")
	frame := vmFrame(t, vm1MAC, "10.0.0.1", "fd00:1::1", 0)
	envs := labelled(t, hv, sk, frame, 1, 22000)
	sendRaw(t, hv, "e2e0", envs)
	received := d.waitStable(t, "sinkd_packets_received_total")
	m := d.metrics(t) // /metrics still answers
	if received < 20000 {
		t.Fatalf("sinkd received %v of 22000 envelopes", received)
	}
	if m["sinkd_sources"] != 256 || m["sinkd_source_overflow_packets_total"] != received-256 || m["sinkd_packets_written_total"] != received {
		t.Errorf("sources %v, overflow %v, written %v of %v received; want 256, %v, all",
			m["sinkd_sources"], m["sinkd_source_overflow_packets_total"], m["sinkd_packets_written_total"], received, received-256)
	}
	n := openFiles(t, d.cmd.Process.Pid)
	if n > 256+64 {
		t.Errorf("sinkd holds %d file descriptors", n)
	}
	t.Logf("22000 labels: %v received, %d file descriptors, %v in the overflow", received, n, m["sinkd_source_overflow_packets_total"])
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, fmt.Sprintf("%d packets from sources past --max-sources", int(received)-256)) {
		t.Errorf("exit %d, summary:\n%s", code, stderr)
	}
	files := testkit.DirNames(t, dir)
	if len(files) != 257 {
		t.Fatalf("%d files, want 256 sources and the overflow", len(files))
	}
	checkWithTools(t, filepath.Join(dir, "cap-overflow.pcap"), int(received)-256)
}

// TestFlowLabelFloodPcapng reproduces the pcapng side of break 2: 50,000
// labels made every -C 1 file repeat thousands of interface blocks (1.9 MB
// files). Now each file holds at most the bounded interfaces.
func TestFlowLabelFloodPcapng(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	dir := t.TempDir()
	d := startSinkd(t, sk, "-w", filepath.Join(dir, "cap.pcapng"), "-C", "1", "--max-sources", "100")
	frame := vmFrame(t, vm1MAC, "10.0.0.1", "fd00:1::1", 0)
	sendRaw(t, hv, "e2e0", labelled(t, hv, sk, frame, 1, 50000))
	received := d.waitStable(t, "sinkd_packets_received_total")
	if received < 45000 {
		t.Fatalf("sinkd received %v of 50000 envelopes", received)
	}
	d.stop(t, syscall.SIGTERM)
	total, largest, most := 0, int64(0), 0
	for _, name := range testkit.DirNames(t, dir) {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1_000_000 {
			t.Errorf("%s: %d bytes under -C 1", name, st.Size())
		}
		info, err := exec.Command("capinfos", "-I", path).CombinedOutput()
		if err != nil {
			t.Fatalf("capinfos %s: %v\n%s", name, err, info)
		}
		n := strings.Count(string(info), "Interface #")
		if n == 0 || n > 101 {
			t.Errorf("%s: %d interfaces, want 1-101", name, n)
		}
		largest, most = max(largest, st.Size()), max(most, n)
		total += len(readFrames(t, path))
	}
	if total != int(received) {
		t.Errorf("files hold %d frames, sinkd received %v", total, received)
	}
	t.Logf("50000 labels: %v received, %d files, the largest %d bytes, at most %d interfaces in one",
		received, len(testkit.DirNames(t, dir)), largest, most)
}

// TestHugePortMapName reproduces issue 11's break 5: a name over 65,535
// bytes wrapped the pcapng option length and capinfos called the file
// corrupt. Names are cleaned and bounded when the map is loaded.
func TestHugePortMapName(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	huge := "\x1b]0;owned\x07\x1b[2J" + strings.Repeat("vm-1", 20000) // 80,000 bytes and terminal escapes
	b, _ := json.Marshal(portmap.Map{Version: 2, Ports: []portmap.Port{{Name: huge, Tag: 1}}})
	mapFile := filepath.Join(t.TempDir(), "portmap.json")
	if err := os.WriteFile(mapFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cap.pcapng")
	d := startSinkd(t, sk, "--port-map", mapFile, "-w", out)
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "cleaned to") || strings.ContainsRune(stderr, 0x1b) {
		t.Errorf("exit %d; want a note on the cleaned name and no escape on the terminal:\n%.600q", code, stderr)
	}
	checkWithTools(t, out, 74)
	names, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("vm-1", portmap.MaxNameLen/4)
	if lines := strings.Fields(string(names)); len(lines) != 74 || lines[0] != want {
		t.Errorf("tshark names %d frames' interface %.80q, want %q", len(lines), lines[0], want)
	}
	// A map file past the bound is refused at start, in one line.
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), portmap.MaxBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin("sinkd"), "--port-map", big, "-w", filepath.Join(t.TempDir(), "x.pcap"), "--metrics-addr", "")
	msg, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "larger than 1048576 bytes") {
		t.Errorf("exit %d: %s", cmd.ProcessState.ExitCode(), msg)
	}
}

// TestPortMapUnreadableAsZUser: sinkd reads its map as root at start, but
// -Z's user cannot reach it (a directory only root may enter). That is said
// once, as a warning naming the user, not as a failed reread a second
// later (and then at every look); the map read at start names the copies.
func TestPortMapUnreadableAsZUser(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	private, dir := filepath.Join(base, "root"), filepath.Join(base, "captures")
	mkdirOwned(t, private, 0)
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	mkdirOwned(t, dir, nobody)
	b, _ := json.Marshal(portmap.Map{Version: 2, Ports: []portmap.Port{{Name: "vm-1", Tag: 100}}})
	mapFile := filepath.Join(private, "portmap.json")
	if err := os.WriteFile(mapFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cap.pcapng")
	start := time.Now()
	d := startSinkd(t, sk, "-Z", "nobody", "--port-map", mapFile, "-w", out)
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "100")
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	// The map is looked at once a second: give it three looks.
	time.Sleep(3*time.Second - time.Since(start))
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "port map cannot be read as nobody") || strings.Contains(stderr, "not read again") {
		t.Errorf("exit %d; want one warning naming nobody and no failed reread:\n%s", code, stderr)
	}
	names, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Fields(string(names)); len(lines) != 74 || lines[0] != "vm-1" {
		t.Errorf("tshark names %d frames' interface %q, want 74 of vm-1", len(lines), lines)
	}
}
