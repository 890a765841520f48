package testkit

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	n := 0
	start := time.Now()
	Eventually(t, 5*time.Second, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestParseMetrics(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       map[string]float64
		err        bool
	}{
		{"counter gauge untyped", "# TYPE a_total counter\na_total 3\n# TYPE b gauge\nb 1.5\nc 7\n",
			map[string]float64{"a_total": 3, "b": 1.5, "c": 7}, false},
		{"labels sorted", "# TYPE d_total counter\nd_total{z=\"1\",a=\"x y\"} 2\nd_total{a=\"q\\\"\"} 4\n",
			map[string]float64{`d_total{a="x y",z="1"}`: 2, `d_total{a="q\""}`: 4}, false},
		{"histogram left out", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\ng 1\n",
			map[string]float64{"g": 1}, false},
		{"bad value", "a_total x\n", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMetrics(strings.NewReader(tt.text))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWritePcap reads the file back with pcapgo: the frames in order, with
// their timestamps a microsecond apart.
func TestWritePcap(t *testing.T) {
	frames := [][]byte{[]byte("first frame..."), []byte("second")}
	name := WritePcap(t, frames)
	if got := DirNames(t, filepath.Dir(name)); !reflect.DeepEqual(got, []string{"in.pcap"}) {
		t.Fatalf("DirNames = %v", got)
	}
	if got := ReadFrames(t, name); !reflect.DeepEqual(got, frames) {
		t.Errorf("ReadFrames = %q", got)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 65535 {
		t.Errorf("link type %v, snap length %d", r.LinkType(), r.Snaplen())
	}
	for i, want := range frames {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(want) || !ci.Timestamp.Equal(time.Unix(1700000000, int64(i)*1000)) {
			t.Errorf("frame %d: %q at %v", i, data, ci.Timestamp)
		}
	}
}

func TestSerializeFixesLengthsAndChecksums(t *testing.T) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{192, 0, 2, 1}, DstIP: []byte{192, 0, 2, 2}}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	udp.SetNetworkLayerForChecksum(ip)
	b := Serialize(t, &layers.Ethernet{EthernetType: layers.EthernetTypeIPv4, SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6)},
		ip, udp, gopacket.Payload("hi"))
	if len(b) != 60 { // Ethernet's minimum, padded
		t.Fatalf("%d bytes", len(b))
	}
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	got := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if got.Length != 30 || got.Checksum == 0 || p.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum == 0 {
		t.Errorf("length %d, checksum %#x", got.Length, got.Checksum)
	}
}

func TestTestdata(t *testing.T) {
	if _, err := os.Stat(Testdata("vm-traffic.pcap")); err != nil {
		t.Error(err)
	}
}

// TestReadFrames reads the shipped pcap and a pcapng made from it alike
// (and the pcapng by interface name),
// and refuses a file cut short, as a test's capture file must be whole.
func TestReadFrames(t *testing.T) {
	vm := VMFrames(t)
	if len(vm) != 74 {
		t.Fatalf("%d frames in vm-traffic.pcap, want 74", len(vm))
	}
	name := filepath.Join(t.TempDir(), "x.pcapng")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: "vm-1", LinkType: layers.LinkTypeEthernet, SnapLength: 65535},
		pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range vm {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(fr), Length: len(fr)}, fr); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	f.Close()
	if got := ReadFrames(t, name); !reflect.DeepEqual(got, vm) {
		t.Errorf("pcapng read back %d frames, not the 74 written", len(got))
	}
	if got := FramesByInterface(t, name); len(got) != 1 || !reflect.DeepEqual(got["vm-1"], vm) {
		t.Errorf("FramesByInterface: %d interfaces, %d frames of vm-1", len(got), len(got["vm-1"]))
	}
	b, _ := os.ReadFile(Testdata("vm-traffic.pcap"))
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	os.WriteFile(cut, b[:len(b)-5], 0o644)
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		ReadFrames(ft, cut)
	}()
	if !ft.failed {
		t.Error("a truncated file read without failing the test")
	}
}

// fakeT records Fatal instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
func (f *fakeT) Fatal(...any)          { f.failed = true; panic("fatal") }

// TestCerts serves TLS with the certificates NewCerts makes and checks
// that a client trusting its CA connects and one trusting another does not.
func TestCerts(t *testing.T) {
	c := NewCerts(t, "127.0.0.1", "localhost")
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), c.ClientConfig())
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	conn.Close()
	if conn, err := tls.Dial("tcp", ln.Addr().String(), NewCerts(t, "127.0.0.1").ClientConfig()); err == nil {
		conn.Close()
		t.Error("a client trusting another CA connected")
	}
}
