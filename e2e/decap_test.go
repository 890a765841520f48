package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
)

// captureEnvelopes has real tcpdump record the envelopes of the VM traffic
// that dpcap replay sends from hv to sk, with tcpdump's extra args.
func captureEnvelopes(t *testing.T, hv, sk *testkit.NetNS, sinks []string, args ...string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "envelopes.pcap")
	td := startTcpdump(t, sk, append([]string{"-U", "-w", name}, args...)...)
	// A socket at the sink port: replay fails when the sink host refuses
	// the IPv4 envelopes (ICMP port unreachable).
	var l net.PacketConn
	sk.Do(t, func() {
		var err error
		if l, err = net.ListenPacket("udp", ":3010"); err != nil {
			t.Error(err)
		}
	})
	if l == nil {
		t.FailNow()
	}
	defer l.Close()
	for _, s := range sinks {
		replay(t, hv, s, vmTraffic)
	}
	time.Sleep(300 * time.Millisecond)
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	return name
}

func convert(t *testing.T, in string, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "inner.pcap")
	cmd := exec.Command(bin("sinkd"), append([]string{"-r", in, "-w", out}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sinkd -r: %v\n%s", err, stderr.String())
	}
	return out, stderr.String()
}

// TestOfflineMatchesEditcap converts a real tcpdump capture of envelopes on
// a veth and compares it packet for packet with editcap -C 62 -L.
func TestOfflineMatchesEditcap(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	in := captureEnvelopes(t, hv, sk, []string{"[2001:db8:1::2]:3010"}, "-i", "e2e0", "udp dst port 3010")
	ours, summary := convert(t, in)
	edited := filepath.Join(t.TempDir(), "editcap.pcap")
	if out, err := exec.Command("editcap", "-C", "62", "-L", "-F", "pcap", in, edited).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	got, _, err := pcapfile.ReadFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := pcapfile.ReadFile(edited)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 74 || len(want) != 74 {
		t.Fatalf("sinkd wrote %d packets, editcap %d; want 74 each\n%s", len(got), len(want), summary)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Data, w.Data) || g.Info.Length != w.Info.Length || !g.Info.Timestamp.Equal(w.Info.Timestamp) {
			t.Fatalf("packet %d: sinkd %d/%d bytes at %v, editcap %d/%d at %v", i,
				len(g.Data), g.Info.Length, g.Info.Timestamp, len(w.Data), w.Info.Length, w.Info.Timestamp)
		}
	}
	equalFrames(t, readFrames(t, ours), testkit.VMFrames(t))
	checkWithTools(t, ours, 74)
}

// TestOfflineCookedCaptures converts tcpdump -i any captures (LINUX_SLL2,
// and LINUX_SLL with -y) of envelopes over IPv6 and IPv4: exact, where a
// fixed chop is not.
func TestOfflineCookedCaptures(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want := append(testkit.VMFrames(t), testkit.VMFrames(t)...)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"LINUX_SLL2", []string{"-i", "any", "udp dst port 3010"}},
		{"LINUX_SLL", []string{"-i", "any", "-y", "LINUX_SLL", "udp dst port 3010"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := captureEnvelopes(t, hv, sk, []string{"[2001:db8:1::2]:3010", "192.0.2.2:3010"}, tt.args...)
			if out, _ := exec.Command("capinfos", "-E", in).Output(); !strings.Contains(string(out), "Linux cooked-mode capture v"+map[string]string{"LINUX_SLL2": "2", "LINUX_SLL": "1"}[tt.name]) {
				t.Fatalf("tcpdump did not write %s:\n%s", tt.name, out)
			}
			ours, _ := convert(t, in)
			equalFrames(t, readFrames(t, ours), want)
			checkWithTools(t, ours, len(want))
			// What the documented recipe makes of the same file.
			edited := filepath.Join(t.TempDir(), "editcap.pcap")
			exec.Command("editcap", "-C", "62", "-F", "pcap", in, edited).Run()
			chopped := readFrames(t, edited)
			if len(chopped) == len(want) && bytes.Equal(chopped[0], want[0]) {
				t.Errorf("editcap -C 62 unexpectedly got %s right", tt.name)
			}
		})
	}
}

// TestOfflineFormatsAndStdin converts the same envelopes from pcapng and
// from standard input.
func TestOfflineFormatsAndStdin(t *testing.T) {
	in := "../testdata/envelopes/nic-ether.pcap"
	ref, _ := convert(t, in)
	ng := filepath.Join(t.TempDir(), "in.pcapng")
	if out, err := exec.Command("editcap", "-F", "pcapng", in, ng).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v %s", err, out)
	}
	fromNg, _ := convert(t, ng)
	equalFrames(t, readFrames(t, fromNg), readFrames(t, ref))

	out := filepath.Join(t.TempDir(), "stdin.pcap")
	cmd := exec.Command(bin("sinkd"), "-r", "-", "-w", out)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sinkd -r -: %v\n%s", err, b)
	}
	equalFrames(t, readFrames(t, out), readFrames(t, ref))
}

// TestOfflineStdinToStdout converts in a pipeline, cat | sinkd -r - -w - |
// tcpdump -r -: "-" is standard input for -r and standard output for -w,
// not one file named twice.
func TestOfflineStdinToStdout(t *testing.T) {
	in := "../testdata/envelopes/nic-ether.pcap"
	ref, _ := convert(t, in)
	out := filepath.Join(t.TempDir(), "piped.pcap")
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sinkd := exec.Command(bin("sinkd"), "-r", "-", "-w", "-")
	tcpdump := exec.Command("tcpdump", "-r", "-", "-w", out)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var sinkdErr, tcpdumpErr bytes.Buffer
	sinkd.Stdin, sinkd.Stdout, sinkd.Stderr = f, w, &sinkdErr
	tcpdump.Stdin, tcpdump.Stderr = r, &tcpdumpErr
	err = tcpdump.Start()
	r.Close()
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	err = sinkd.Run()
	w.Close()
	if err != nil {
		t.Fatalf("sinkd -r - -w -: %v\n%s", err, sinkdErr.String())
	}
	if err := tcpdump.Wait(); err != nil {
		t.Fatalf("tcpdump -r -: %v\n%s", err, tcpdumpErr.String())
	}
	want := readFrames(t, ref)
	equalFrames(t, readFrames(t, out), want)
	checkWithTools(t, out, len(want))
}

// TestOfflineCountsWhatItSkips converts a capture of everything on a link:
// envelopes, ping, ARP and neighbour discovery, and IPv6 fragments.
func TestOfflineCountsWhatItSkips(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	name := filepath.Join(t.TempDir(), "all.pcap")
	td := startTcpdump(t, sk, "-U", "-w", name, "-i", "e2e0")
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic)
	hv.Run(t, "ping", "-c", "2", "-i", "0.2", "192.0.2.2")
	big := testkit.WritePcap(t, [][]byte{bytes.Repeat([]byte{2}, 3000)})
	replay(t, hv, "[2001:db8:1::2]:3010", big) // fragmented on the 1600-byte link
	time.Sleep(300 * time.Millisecond)
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	out, summary := convert(t, name)
	if n := len(readFrames(t, out)); n != 75 {
		t.Errorf("wrote %d packets, want the 75 envelopes' frames", n)
	}
	// The 3062-byte envelope crosses the 1600-byte link in two fragments,
	// put back together.
	for _, want := range []string{"75 packets captured", "0 packets malformed", "2 fragments reassembled into 1 packets", "not_udp_or_gre"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
}

// TestRawModeOnLoopback captures on lo, where every frame passes AF_PACKET
// twice, as it is sent and as it arrives: sinkd -i lo writes each
// envelope's frame once, and tcpdump -i lo records each envelope once.
func TestRawModeOnLoopback(t *testing.T) {
	ns := testkit.NewNetNS(t)
	want := testkit.VMFrames(t)
	out := filepath.Join(t.TempDir(), "lo.pcap")
	ref := filepath.Join(t.TempDir(), "tcpdump.pcap")
	d := startSinkd(t, ns, "-i", "lo", "-w", out)
	td := startTcpdump(t, ns, "-i", "lo", "-U", "-w", ref, "udp dst port 3010")
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_received_total", float64(len(want)))
	received := d.waitStable(t, "sinkd_packets_received_total")
	testkit.Eventually(t, 10*time.Second, "tcpdump to write the envelopes", func() bool {
		pkts, _, err := pcapfile.ReadFile(ref)
		return err == nil && len(pkts) >= len(want)
	})
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	if code, stderr := d.stop(t, syscall.SIGINT); code != 0 || received != float64(len(want)) {
		t.Fatalf("sinkd -i lo received %v envelopes of %d sent, exit %d:\n%s", received, len(want), code, stderr)
	}
	checkWithTools(t, ref, len(want))
	checkWithTools(t, out, len(want))
	equalFrames(t, readFrames(t, out), want)
}

// TestRawModeTakesWhatSocketsCannot sends envelopes as a NIC that fixes no
// length field would: IPv6 payload length 0 and a garbage UDP length. No
// UDP socket receives them; sinkd -i writes every inner frame byte-exact,
// including frames behind an 802.1Q tag.
func TestRawModeTakesWhatSocketsCannot(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want := testkit.VMFrames(t)
	envs := unsetLengths(t, hv, sk, want)
	// The same envelopes behind an 802.1Q tag.
	for _, e := range envs[:10] {
		envs = append(envs, slices.Concat(e[:12], []byte{0x81, 0x00, 0x00, 0x64}, e[12:]))
	}
	want = append(want, want[:10]...)

	udp := startSinkd(t, sk, "-w", filepath.Join(t.TempDir(), "udp.pcap"))
	out := filepath.Join(t.TempDir(), "raw.pcap")
	raw := startSinkd(t, sk, "-i", "e2e0", "-w", out, "--metrics-addr", "127.0.0.1:9311")
	before := snmp6(t, sk, "Udp6InErrors")
	sendRaw(t, hv, "e2e0", envs)
	m := raw.waitMetric(t, "sinkd_packets_written_total", float64(len(want)))
	if got := udp.metrics(t)["sinkd_packets_received_total"]; got != 0 {
		t.Errorf("the UDP socket received %v envelopes with unset lengths", got)
	}
	if errs := snmp6(t, sk, "Udp6InErrors") - before; errs < 74 {
		t.Errorf("Udp6InErrors rose by %d; the kernel should drop the untagged envelopes", errs)
	}
	if code, stderr := raw.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd -i: exit %d\n%s", code, stderr)
	}
	if m["sinkd_packets_malformed_total{reason=\"truncated_header\"}"] != 0 {
		t.Errorf("malformed envelopes: %v", m)
	}
	equalFrames(t, readFrames(t, out), want)
	checkWithTools(t, out, len(want))
}

// unsetLengths wraps frames as a NIC that fixes no length field would, for
// sending from hv to sk over link 1: IPv6 payload length 0 and a garbage
// UDP length, which no UDP socket receives.
func unsetLengths(t *testing.T, hv, sk *testkit.NetNS, frames [][]byte) [][]byte {
	t.Helper()
	tmpl := decap.Envelope{
		DstMAC: macOf(t, sk, "e2e0"), SrcMAC: macOf(t, hv, "e2e0"),
		Src: mustAddr("2001:db8:1::1"), Dst: mustAddr("2001:db8:1::2"), SrcPort: 3000, DstPort: 3010,
	}
	b, err := tmpl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(b[58:60], 0xDEAD) // the UDP length, never written by the dataplane
	var envs [][]byte
	for _, f := range frames {
		envs = append(envs, decap.Encap(nil, &b, f, false))
	}
	return envs
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestOfflineSnapLengthCut converts captures made with a snap length, as
// tcpdump -s writes them, of VXLAN envelopes over IPv4 whose outer frame
// has a 2-byte Ethernet trailer: the inner frame's length on the wire is
// the one Wireshark finds (the UDP length less the UDP and VXLAN headers),
// cut or not, and a capture that ends before a whole inner Ethernet header
// is counted as malformed, not written as a record tcpdump cannot read.
func TestOfflineSnapLengthCut(t *testing.T) {
	vm := testkit.VMFrames(t)
	var frames [][]byte
	for _, in := range [][]byte{vm[30], vm[40], vm[8]} {
		vxlan := append([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, in...)
		f := testkit.Frame{SrcIP: mustAddr("192.0.2.1"), DstIP: mustAddr("192.0.2.2"), Proto: layers.IPProtocolUDP,
			SrcPort: 5000, DstPort: 4789, Payload: vxlan}.Bytes(t)
		frames = append(frames, append(f, 0, 0))
	}
	const headers = 14 + 20 + 8 + 8 // outer Ethernet, IPv4, UDP, VXLAN
	for _, tt := range []struct {
		snap      int
		written   int
		malformed string
	}{
		{0, 3, ""},
		{headers + 40, 3, ""},
		{headers + 13, 0, "packets malformed (truncated_inner_header 3)"},
		{headers, 0, "packets malformed (truncated_inner_header 3)"},
	} {
		t.Run(fmt.Sprintf("snap %d", tt.snap), func(t *testing.T) {
			in := testkit.WritePcapSnap(t, frames, tt.snap)
			out, summary := convert(t, in)
			if !strings.Contains(summary, tt.malformed) {
				t.Errorf("summary lacks %q:\n%s", tt.malformed, summary)
			}
			// What Wireshark takes the inner frames' lengths to be.
			var want []int
			for _, f := range tsharkFields(t, in, "-e", "udp.length") {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("tshark's udp.length %q", f)
				}
				want = append(want, n-8-8)
			}
			pkts, _, err := pcapfile.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != tt.written {
				t.Fatalf("wrote %d packets, want %d\n%s", len(pkts), tt.written, summary)
			}
			for i, p := range pkts {
				if p.Info.Length != want[i] || p.Info.Length != len(frames[i])-headers-2 {
					t.Errorf("packet %d: original length %d, Wireshark's %d, the inner frame's %d", i, p.Info.Length, want[i], len(frames[i])-headers-2)
				}
			}
			td, err := exec.Command("tcpdump", "-n", "-r", out).CombinedOutput()
			if err != nil || strings.Contains(string(td), "Invalid header") {
				t.Errorf("tcpdump -r: %v\n%s", err, td)
			}
			checkWithTools(t, out, tt.written)
		})
	}
}

// TestOfflineBarePackets converts GENEVE envelopes of bare ARP, IPv4 and
// IPv6 packets (the protocol type is their EtherType) and ERSPAN III ones
// of bare IPv4 and IPv6 (frame type IP): each is written behind an
// Ethernet header of its own EtherType, which tshark then dissects as the
// packet it is.
func TestOfflineBarePackets(t *testing.T) {
	vm := testkit.VMFrames(t)
	arp, ip4, ip6 := vm[4][14:], vm[30][14:], vm[8][14:]
	geneve := func(proto uint16, pkt []byte) []byte {
		hdr := binary.BigEndian.AppendUint16([]byte{0, 0}, proto)
		return testkit.Frame{SrcIP: mustAddr("192.0.2.1"), DstIP: mustAddr("192.0.2.2"), Proto: layers.IPProtocolUDP,
			SrcPort: 5000, DstPort: 6081, Payload: slices.Concat(hdr, []byte{0, 0, 7, 0}, pkt)}.Bytes(t)
	}
	erspan3 := func(pkt []byte) []byte {
		gre := []byte{0x10, 0, 0x22, 0xEB, 0, 0, 0, 1}              // sequence number present, ERSPAN III
		hdr := []byte{0x20, 100, 0, 9, 0, 0, 0, 0, 0, 0, 2 << 2, 0} // version 2, session 9, frame type 2 (IP)
		return testkit.Frame{SrcIP: mustAddr("2001:db8::1"), DstIP: mustAddr("2001:db8::2"), Proto: layers.IPProtocolGRE,
			Payload: slices.Concat(gre, hdr, pkt)}.Bytes(t)
	}
	tests := []struct {
		frame  []byte
		bare   []byte
		protos string
	}{
		{geneve(0x0806, arp), arp, "eth:ethertype:arp"},
		{geneve(0x0800, ip4), ip4, "eth:ethertype:ip:tcp"},
		{geneve(0x86DD, ip6), ip6, "eth:ethertype:ipv6:ipv6.hopopts:icmpv6"},
		{erspan3(ip4), ip4, "eth:ethertype:ip:tcp"},
		{erspan3(ip6), ip6, "eth:ethertype:ipv6:ipv6.hopopts:icmpv6"},
	}
	var frames [][]byte
	for _, tt := range tests {
		frames = append(frames, tt.frame)
	}
	out, summary := convert(t, testkit.WritePcap(t, frames))
	got := readFrames(t, out)
	if len(got) != len(tests) {
		t.Fatalf("wrote %d packets, want %d\n%s", len(got), len(tests), summary)
	}
	protos := tsharkFields(t, out, "-e", "frame.protocols")
	for i, tt := range tests {
		if !bytes.Equal(got[i][14:], tt.bare) || i >= len(protos) || protos[i] != tt.protos {
			t.Errorf("packet %d: %d bytes behind %x, tshark sees %v; want the %d-byte packet, %s",
				i, len(got[i])-14, got[i][:14], protos, len(tt.bare), tt.protos)
		}
	}
	checkWithTools(t, out, len(tests))
}

// TestOfflineVXLANGPE converts VXLAN-GPE envelopes on its port 4790 of
// Ethernet, IPv4 and IPv6 (the last two written behind an Ethernet header
// of their EtherType), counts those of NSH, and refuses a VXLAN-GPE header
// of NSH on the VXLAN port, whose payload is no Ethernet frame; one of
// Ethernet there is VXLAN's, as Wireshark takes it.
func TestOfflineVXLANGPE(t *testing.T) {
	vm := testkit.VMFrames(t)
	eth, ip4, ip6 := vm[30], vm[30][14:], vm[8][14:]
	nsh := slices.Concat([]byte{0x0F, 0xC6, 0x01, 0x03, 0, 0, 1, 0xFF}, eth) // NSH MD type 2 carrying Ethernet
	gpe := func(port uint16, next byte, pkt []byte) []byte {
		return testkit.Frame{SrcIP: mustAddr("192.0.2.1"), DstIP: mustAddr("192.0.2.2"), Proto: layers.IPProtocolUDP,
			SrcPort: 5000, DstPort: port, Payload: slices.Concat([]byte{0x0C, 0, 0, next, 0, 0, 9, 0}, pkt)}.Bytes(t)
	}
	in := testkit.WritePcap(t, [][]byte{gpe(4790, 3, eth), gpe(4790, 1, ip4), gpe(4790, 2, ip6), gpe(4790, 4, nsh), gpe(4789, 4, nsh), gpe(4789, 3, eth)})
	out, summary := convert(t, in)
	want := [][]byte{eth, slices.Concat(make([]byte, 12), []byte{0x08, 0}, ip4), slices.Concat(make([]byte, 12), []byte{0x86, 0xDD}, ip6), eth}
	equalFrames(t, readFrames(t, out), want)
	for _, s := range []string{"2 packets malformed", "vxlan_gpe_on_vxlan_port 1", "vxlan_gpe_unsupported_protocol 1"} {
		if !strings.Contains(summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, summary)
		}
	}
	checkWithTools(t, out, len(want))
}

// TestOfflinePortsOfAKind converts VXLAN envelopes to two ports with
// --ports naming both, and has sinkd refuse, with one line and exit
// status 2, a --ports that gives a port to two kinds.
func TestOfflinePortsOfAKind(t *testing.T) {
	vm := testkit.VMFrames(t)
	var frames, want [][]byte
	for i, port := range []uint16{4789, 8472, 4789, 8472, 6081} {
		in := vm[30+i]
		frames = append(frames, testkit.Frame{SrcIP: mustAddr("192.0.2.1"), DstIP: mustAddr("192.0.2.2"), Proto: layers.IPProtocolUDP,
			SrcPort: 5000, DstPort: port, Payload: append([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, in...)}.Bytes(t))
		want = append(want, in)
	}
	in := testkit.WritePcap(t, frames)
	out, summary := convert(t, in, "--ports", "vxlan=4789,vxlan=8472,vxlan=6081,geneve=0")
	equalFrames(t, readFrames(t, out), want)
	checkWithTools(t, out, len(want))
	if !strings.Contains(summary, "5 packets captured") {
		t.Errorf("summary:\n%s", summary)
	}

	for _, tt := range []struct{ ports, err string }{
		{"vxlan=4789,geneve=4789", `sinkd: --ports: invalid port mapping "geneve=4789": port 4789 is given to vxlan and to geneve: give each port one kind (see sinkd --help)`},
		{"vxlan=6081", "sinkd: --ports: port 6081 is both vxlan's and geneve's (geneve's default): add geneve=0 or geneve=PORT to --ports (see sinkd --help)"},
	} {
		cmd := exec.Command(bin("sinkd"), "-r", in, "-w", filepath.Join(t.TempDir(), "out.pcap"), "--ports", tt.ports)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || stderr.String() != tt.err+"\n" {
			t.Errorf("sinkd --ports %s: %v, stderr %q; want exit status 2 and %q", tt.ports, err, stderr.String(), tt.err)
		}
	}
}

// TestRawModeTwoNICPorts has sinkd -i take NIC envelopes on two ports
// (--ports nic=3010,nic=3011) with two workers: the kernel filter lets
// both up, and the steering program sends both copies of a frame, one to
// each port, to the worker its inner flow picks.
func TestRawModeTwoNICPorts(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	frames := testkit.VMFrames(t)
	envs := unsetLengths(t, hv, sk, frames)
	for _, e := range envs[:len(frames)] {
		e = slices.Clone(e)
		binary.BigEndian.PutUint16(e[decap.EnvelopeDstPort:], 3011)
		envs = append(envs, e)
	}
	dir := t.TempDir()
	d := startSinkd(t, sk, "-i", "e2e0", "--ports", "nic=3010,nic=3011", "--workers", "2", "-w", filepath.Join(dir, "out.pcap"))
	sendRaw(t, hv, "e2e0", envs)
	d.waitMetric(t, "sinkd_packets_written_total", float64(len(envs)))
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd -i: exit %d\n%s", code, stderr)
	}
	total := 0
	for w := range 2 {
		got := readFrames(t, filepath.Join(dir, fmt.Sprintf("out-w%d.pcap", w)))
		if len(got) == 0 {
			t.Errorf("worker %d wrote nothing: the inner flows were not spread", w)
		}
		copies := map[string]int{}
		for _, f := range got {
			copies[string(f)]++
		}
		for f, n := range copies {
			if n%2 != 0 {
				t.Errorf("worker %d has %d copies of a %d-byte frame: the two ports' copies went to different workers", w, n, len(f))
			}
		}
		total += len(got)
	}
	if total != len(envs) {
		t.Errorf("the workers wrote %d frames, want %d", total, len(envs))
	}
}
