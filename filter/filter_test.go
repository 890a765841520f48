//go:build cgo && libpcap

package filter

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// corpus is real VM traffic plus what the filter must also judge: 802.1Q
// and QinQ tags, and IPv4 and IPv6 fragments.
func corpus(t testing.TB) [][]byte {
	t.Helper()
	pkts, _, err := pcapfile.ReadFile("../testdata/vm-traffic.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, p := range pkts {
		f := p.Data
		out = append(out, f,
			slices.Concat(f[:12], []byte{0x81, 0x00, 0x00, 0x64}, f[12:]),                         // VLAN 100
			slices.Concat(f[:12], []byte{0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14}, f[12:])) // QinQ 10/20
		switch binary.BigEndian.Uint16(f[12:14]) {
		case 0x0800:
			first, later := slices.Clone(f), slices.Clone(f)
			binary.BigEndian.PutUint16(first[20:], 0x2000) // more fragments
			binary.BigEndian.PutUint16(later[20:], 0x00B9) // offset 1480
			out = append(out, first, later)
		case 0x86DD:
			frag := slices.Concat(f[:54], []byte{f[20], 0, 0x05, 0xA9, 0, 0, 0, 7}, f[54:]) // offset 181, more
			frag[20] = 44
			binary.BigEndian.PutUint16(frag[18:], binary.BigEndian.Uint16(f[18:20])+8)
			out = append(out, frag)
		}
	}
	return out
}

var expressions = []string{
	"ip", "ip6", "arp", "icmp", "icmp6", "tcp", "udp", "tcp port 80", "udp port 53",
	"port 53 or port 80", "vlan", "vlan 100", "vlan and ip6", "vlan 10 and vlan 20 and tcp",
	"portrange 50-100", "net 192.0.2.0/24", "host 2001:db8:10::1", "ether broadcast",
	"ip[6:2] & 0x3fff != 0", "ip6[6] == 44", "tcp[tcpflags] & tcp-syn != 0",
	"greater 1000", "less 100", "not ip and not ip6", "icmp6 and ip6[40] == 135",
}

// TestMatchesTcpdump asks tcpdump which corpus frames each expression
// selects and compares with Match.
func TestMatchesTcpdump(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump is not installed ('make test' installs it)")
	}
	frames := corpus(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "corpus.pcap")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for i, fr := range frames {
		// The timestamp numbers the frame, to tell tcpdump's picks apart.
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(fr), Length: len(fr)}, fr)
	}
	f.Close()
	for _, expr := range expressions {
		t.Run(expr, func(t *testing.T) {
			out := filepath.Join(dir, "out.pcap")
			if b, err := exec.Command("tcpdump", "-r", in, "-w", out, expr).CombinedOutput(); err != nil {
				t.Fatalf("tcpdump: %v\n%s", err, b)
			}
			picked, _, err := pcapfile.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]bool{}
			for _, p := range picked {
				want[int(p.Info.Timestamp.Unix())-1] = true
			}
			flt, err := Compile(expr, 262144)
			if err != nil {
				t.Fatal(err)
			}
			matched := 0
			for i, fr := range frames {
				if got := flt.Match(fr); got != want[i] {
					t.Errorf("frame %d: Match = %v, tcpdump says %v", i, got, want[i])
				}
				if want[i] {
					matched++
				}
			}
			if matched == 0 || matched == len(frames) {
				t.Errorf("the corpus does not test %q: tcpdump picks %d of %d frames", expr, matched, len(frames))
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, expr := range []string{"tcp port", "frobnicate", "host 999.1.1.1"} {
		_, err := Compile(expr, 262144)
		if err == nil || !strings.Contains(err.Error(), expr) {
			t.Errorf("Compile(%q) = %v; want an error naming the expression", expr, err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	frames := corpus(b)
	flt, err := Compile("tcp port 443 or (vlan and udp port 53)", 262144)
	if err != nil {
		b.Fatal(err)
	}
	fr := frames[30*3] // a TCP frame
	b.ReportAllocs()
	for b.Loop() {
		flt.Match(fr)
	}
}
