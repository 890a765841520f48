package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/internal/testkit"
)

// outerPacket wraps inner in an outer IP packet of one envelope kind:
// "vxlan" (UDP 4789), "erspan" (ERSPAN II over GRE) or "nic" (UDP 3010),
// from src to dst.
func outerPacket(t *testing.T, kind string, src, dst netip.Addr, inner []byte) []byte {
	t.Helper()
	var ip gopacket.NetworkLayer
	proto := layers.IPProtocolUDP
	if kind == "erspan" {
		proto = layers.IPProtocolGRE
	}
	if src.Is4() {
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	ls := []gopacket.SerializableLayer{ip.(gopacket.SerializableLayer)}
	switch kind {
	case "vxlan", "nic":
		port := layers.UDPPort(3010)
		if kind == "vxlan" {
			port = 4789
		}
		udp := &layers.UDP{SrcPort: 49152, DstPort: port}
		udp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, udp)
		if kind == "vxlan" {
			ls = append(ls, &layers.VXLAN{ValidIDFlag: true, VNI: 42})
		}
	case "erspan":
		ls = append(ls, &layers.GRE{SeqPresent: true, Seq: 1, Protocol: layers.EthernetTypeERSPAN},
			&layers.ERSPANII{Version: 1, SessionID: 7})
	}
	return testkit.Serialize(t, append(ls, gopacket.Payload(inner))...)
}

// fragment splits the IP packet pkt (no extension headers) into fragments
// of at most mtu bytes, with identification id, each behind an Ethernet
// header.
func fragment(pkt []byte, mtu int, id uint32) [][]byte {
	v6 := pkt[0]>>4 == 6
	hlen, etype := 20, []byte{0x08, 0x00}
	if v6 {
		hlen, etype = 40, []byte{0x86, 0xDD}
	}
	step := (mtu - hlen) &^ 7
	if v6 {
		step = (mtu - hlen - 8) &^ 7
	}
	hdr, data := pkt[:hlen], pkt[hlen:]
	ether := slices.Concat([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}, etype)
	var out [][]byte
	for off := 0; off < len(data); off += step {
		chunk := data[off:min(off+step, len(data))]
		more := off+step < len(data)
		h := slices.Clone(hdr)
		if v6 {
			fh := make([]byte, 8)
			fh[0], h[6] = h[6], 44
			fo := uint16(off)
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fo)
			binary.BigEndian.PutUint32(fh[4:], id)
			binary.BigEndian.PutUint16(h[4:], uint16(8+len(chunk)))
			h = append(h, fh...)
		} else {
			fo := uint16(off / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(chunk)))
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			binary.BigEndian.PutUint16(h[6:], fo)
			h[10], h[11] = 0, 0
			var sum uint32
			for i := 0; i < hlen; i += 2 {
				sum += uint32(binary.BigEndian.Uint16(h[i:]))
			}
			for sum > 0xFFFF {
				sum = sum>>16 + sum&0xFFFF
			}
			binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
		}
		out = append(out, slices.Concat(ether, h, chunk))
	}
	return out
}

// fragmentedCapture is a capture of fragmented envelopes of every kind,
// over IPv4 and IPv6, in order, reversed, interleaved and duplicated, with
// one datagram missing a fragment. It returns the frames and the inner
// frames a reassembler writes, in the order their datagrams complete.
func fragmentedCapture(t *testing.T) (frames, inner [][]byte) {
	t.Helper()
	hv4, sk4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	hv6, sk6 := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	innerFrame := func(i, size int) []byte {
		return testkit.Frame{SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), Proto: layers.IPProtocolUDP,
			SrcPort: uint16(1000 + i), DstPort: 9, Payload: bytes.Repeat([]byte{byte(i)}, size)}.Bytes(t)
	}
	type env struct {
		kind     string
		src, dst netip.Addr
		size     int
	}
	envs := []env{
		{"vxlan", hv4, sk4, 3000}, {"erspan", hv4, sk4, 7700}, {"nic", hv6, sk6, 4000}, {"vxlan", hv6, sk6, 9000},
		{"erspan", hv6, sk6, 2000}, {"nic", hv4, sk4, 1200}, // the last fits: not fragmented
	}
	var frags [][][]byte
	var inners [][]byte
	for i, e := range envs {
		in := innerFrame(i, e.size)
		inners = append(inners, in)
		frags = append(frags, fragment(outerPacket(t, e.kind, e.src, e.dst, in), 1500, uint32(0x100+i)))
	}
	// 0 in order; 1 reversed; 2 and 3 interleaved, 3 completing first;
	// 4 with a fragment twice; 5 whole; then a datagram missing its last
	// fragment.
	frames = append(frames, frags[0]...)
	inner = append(inner, inners[0])
	r := slices.Clone(frags[1])
	slices.Reverse(r)
	frames = append(frames, r...)
	inner = append(inner, inners[1])
	frames = append(frames, frags[2][0], frags[3][0], frags[2][1], frags[3][1])
	frames = append(frames, frags[3][2:]...)
	frames = append(frames, frags[2][2:]...)
	inner = append(inner, inners[3], inners[2])
	frames = append(frames, frags[4][0], frags[4][0], frags[4][1])
	inner = append(inner, inners[4])
	frames = append(frames, frags[5]...)
	inner = append(inner, inners[5])
	lost := fragment(outerPacket(t, "vxlan", hv4, sk4, innerFrame(9, 5000)), 1500, 0x999)
	frames = append(frames, lost[:len(lost)-1]...)
	return frames, inner
}

// tsharkPayloads lists, for each frame of a capture tshark shows an inner
// UDP packet in (after reassembling what it reassembles), its time and the
// inner UDP payload: the last of the frame's UDP layers.
func tsharkPayloads(t *testing.T, name string) []string {
	t.Helper()
	var lines []string
	for _, l := range tsharkFields(t, name, "-d", "udp.port==3010,eth", "-Y", "udp.dstport == 9", "-e", "frame.time_epoch", "-e", "udp.payload") {
		f := strings.Split(l, "\t")
		p := strings.Split(f[len(f)-1], ",")
		lines = append(lines, f[0]+" "+p[len(p)-1])
	}
	return lines
}

// TestOfflineReassemblesOuterFragments converts a capture of fragmented
// VXLAN, ERSPAN and NIC envelopes over IPv4 and IPv6: sinkd -r writes each
// inner frame once, at the time of the fragment completing its datagram,
// as tshark shows the reassembled envelopes of the input, and counts
// every fragment.
func TestOfflineReassemblesOuterFragments(t *testing.T) {
	frames, want := fragmentedCapture(t)
	in := testkit.WritePcap(t, frames)
	out, summary := convert(t, in)
	equalFrames(t, readFrames(t, out), want)
	checkWithTools(t, out, len(want))
	// 21 fragments made 5 packets, one came twice, and the datagram
	// missing its last fragment had 3 of its 4.
	for _, line := range []string{fmt.Sprintf("%d packets captured", len(want)), fmt.Sprintf("%d packets received", len(frames)),
		"21 fragments reassembled into 5 packets", "4 fragments dropped (duplicate 1, incomplete 3)"} {
		if !strings.Contains(summary, line) {
			t.Errorf("summary lacks %q:\n%s", line, summary)
		}
	}
	got, ref := tsharkPayloads(t, out), tsharkPayloads(t, in)
	if len(ref) != len(want) || !slices.Equal(got, ref) {
		t.Errorf("tshark shows %d inner packets written:\n%.300q\nand %d reassembled from the input:\n%.300q", len(got), got, len(ref), ref)
	}
}

// TestLiveReassemblesOuterFragments: sinkd -i --workers 2 on a veth
// receives the fragmented envelopes of fragmentedCapture, sent as they are,
// and NIC envelopes that the sender's kernel fragments for the 1600-byte
// link. The fanout sends every fragment of a datagram to one worker, so
// each inner frame is written once, and every scrape adds up.
func TestLiveReassemblesOuterFragments(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	frames, want := fragmentedCapture(t)
	src, dst := macOf(t, hv, "e2e0"), macOf(t, sk, "e2e0")
	for _, f := range frames {
		copy(f[0:6], dst)
		copy(f[6:12], src)
	}
	var big [][]byte
	for i, size := range []int{3000, 5000, 7000} {
		big = append(big, testkit.Frame{SrcIP: netip.MustParseAddr("10.0.1.1"), DstIP: netip.MustParseAddr("10.0.1.2"),
			Proto: layers.IPProtocolUDP, SrcPort: 2000, DstPort: 9, Payload: bytes.Repeat([]byte{byte(0x80 + i)}, size)}.Bytes(t))
	}
	want = append(want, big...)
	dir := t.TempDir()
	d := startSinkd(t, sk, "-i", "e2e0", "--workers", "2", "-w", filepath.Join(dir, "out.pcap"))
	scrapeWhileSending(t, d, []*exec.Cmd{
		hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "20", "--pps", "200", testkit.WritePcap(t, big)),
	})
	sendRaw(t, hv, "e2e0", frames)
	m := d.waitMetric(t, "sinkd_packets_written_total", float64(len(want)-len(big)+20*len(big)))
	identity(t, m)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The kernel's fragments are 2, 4 and 5 per envelope; the datagram
	// missing its last fragment is the only one left incomplete.
	for _, line := range []string{fmt.Sprintf("%d fragments reassembled into %d packets", 21+20*11, 5+20*3),
		"4 fragments dropped (duplicate 1, incomplete 3)"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("summary lacks %q:\n%s", line, stderr)
		}
	}
	var got [][]byte
	per := make([]int, 2)
	for w := range 2 {
		name := filepath.Join(dir, fmt.Sprintf("out-w%d.pcap", w))
		frames := readFrames(t, name)
		checkWithTools(t, name, len(frames))
		per[w] = len(frames)
		got = append(got, frames...)
	}
	count := func(frames [][]byte) map[string]int {
		m := map[string]int{}
		for _, f := range frames {
			m[string(f)]++
		}
		return m
	}
	g, w := count(got), count(want)
	for _, b := range big {
		w[string(b)] = 20
	}
	if len(g) != len(w) {
		t.Errorf("%d distinct frames written, want %d", len(g), len(w))
	}
	for f, n := range w {
		if g[f] != n {
			t.Errorf("a frame of %d bytes written %d times, want %d", len(f), g[f], n)
		}
	}
	t.Logf("frames per worker: %v", per)
}
