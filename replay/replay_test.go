package replay

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestSendPcapAndPcapng replays the same frames from a pcap and a pcapng
// file (mergecap's default output) to a socket on loopback; a pcapng file
// has no file-wide link type, so each packet's is checked.
func TestSendPcapAndPcapng(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 100)}
	for _, ng := range []bool{false, true} {
		var buf bytes.Buffer
		if ng {
			w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames {
				w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(f), Length: len(f)}, f)
			}
			w.Flush()
		} else {
			w := pcapgo.NewWriter(&buf)
			w.WriteFileHeader(65535, layers.LinkTypeEthernet)
			for _, f := range frames {
				w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(f), Length: len(f)}, f)
			}
		}
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP{127, 0, 0, 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		sink := netip.MustParseAddrPort(pc.LocalAddr().String())
		st, err := Send(context.Background(), Config{Sink: sink, Loops: 1}, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
		})
		if err != nil || st.Sent != uint64(len(frames)) {
			t.Fatalf("pcapng %v: sent %d, err %v", ng, st.Sent, err)
		}
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		for i, f := range frames {
			b := make([]byte, 2000)
			n, err := pc.Read(b)
			if err != nil || !bytes.Equal(b[:n], f) {
				t.Fatalf("pcapng %v: datagram %d: %d bytes, err %v", ng, i, n, err)
			}
		}
	}
}

func TestSendRefusesOtherLinkTypes(t *testing.T) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeRaw)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: 20, Length: 20}, make([]byte, 20))
	_, err := Send(context.Background(), Config{Sink: netip.MustParseAddrPort("127.0.0.1:9"), Loops: 1}, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err == nil || !strings.Contains(err.Error(), "replay needs Ethernet frames") {
		t.Fatalf("err = %v", err)
	}
}
