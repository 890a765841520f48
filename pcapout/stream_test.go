package pcapout

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestStreamWritesWhatPcapgoWrites checks a Stream against gopacket's
// writers, which dpcap fetch wrote with before: the same bytes, in either
// format, with no, one or several interfaces of different link types.
func TestStreamWritesWhatPcapgoWrites(t *testing.T) {
	type iface struct {
		ifc  Interface
		link layers.LinkType
		snap uint32
	}
	all := []iface{
		{Interface{Name: "vm-1", Description: "from 2001:db8::1"}, layers.LinkTypeEthernet, 65535},
		{Interface{Name: "raw"}, layers.LinkTypeRaw, 262144},
		{Interface{Name: "pf0 to vm-1", Description: "é"}, layers.LinkTypeNull, 1500},
	}
	section := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "app", OS: "linux", Hardware: "amd64"}}
	for _, format := range []Format{FormatPcap, FormatPcapng} {
		for _, n := range []int{0, 1, 3} {
			ifaces := all[:n]
			if format == FormatPcap {
				ifaces = all[:min(n, 1)]
			}
			var got, want bytes.Buffer
			s := NewStream(&got, StreamOptions{Format: format, Application: "app", OS: "linux", Hardware: "amd64"})
			var ng *pcapgo.NgWriter
			bw := bufio.NewWriter(&want)
			var p *pcapgo.Writer
			for i, f := range ifaces {
				if _, err := s.AddInterface(f.ifc, f.link, f.snap); err != nil {
					t.Fatal(err)
				}
				ngi := pcapgo.NgInterface{Name: f.ifc.Name, Description: f.ifc.Description, LinkType: f.link, SnapLength: f.snap, TimestampResolution: 9}
				var err error
				switch {
				case format == FormatPcap:
					p = pcapgo.NewWriterNanos(bw)
					err = p.WriteFileHeader(capture.MaxSnapLen, f.link)
				case i == 0:
					ng, err = pcapgo.NewNgWriterInterface(&want, ngi, section)
				default:
					_, err = ng.AddInterface(ngi)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3000 {
				if len(ifaces) == 0 {
					break
				}
				data := bytes.Repeat([]byte{byte(i)}, i%1500+1)
				ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1234567), CaptureLength: len(data),
					Length: len(data) + i%3, InterfaceIndex: i % len(ifaces)}
				if err := s.WritePacket(ci.InterfaceIndex, ci.Timestamp, data, ci.Length); err != nil {
					t.Fatal(err)
				}
				var err error
				if format == FormatPcap {
					err = p.WritePacket(ci, data)
				} else {
					err = ng.WritePacket(ci, data)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			switch {
			case ng != nil:
				ng.Flush()
			case n == 0 && format == FormatPcapng:
				// pcapgo writes no section without an interface: a bare
				// section header, as dpcap fetch always wrote.
				want.Write(le.AppendUint32(le.AppendUint32(nil, ngSHB), 28))
				want.Write(sectionHeader())
				want.Write(le.AppendUint32(nil, 28))
			case n == 0:
				p = pcapgo.NewWriterNanos(bw)
				p.WriteFileHeader(capture.MaxSnapLen, layers.LinkTypeEthernet)
			}
			bw.Flush()
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%v, %d interfaces: %d bytes, pcapgo %d, differ", format, n, got.Len(), want.Len())
			}
		}
	}
}

// TestStreamLive checks what a live stream adds: the header at once
// (Begin), writes as asked (Flush) and statistics blocks with
// isb_ifdrop, which a pcap stream leaves out.
func TestStreamLive(t *testing.T) {
	for _, format := range []Format{FormatPcap, FormatPcapng} {
		name := filepath.Join(t.TempDir(), "live")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		s := NewStream(f, StreamOptions{Format: format, Application: "sinkd", FlushSize: 1 << 20})
		if err := s.Begin(layers.LinkTypeEthernet, 128); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if st, _ := f.Stat(); st.Size() == 0 {
			t.Fatalf("%s: nothing written after Begin and Flush", format)
		}
		ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		i, _ := s.AddInterface(Interface{Name: "vm-1"}, layers.LinkTypeEthernet, 128)
		if err := s.WritePacket(i, ts, numberedFrame(1, 128), 1000); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteStats(i, InterfaceStats{Received: 9, Dropped: 5, Accepted: 1}, ts, ts.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteStats(i+1, InterfaceStats{}, ts, ts); err == nil && format == FormatPcapng {
			t.Errorf("statistics of an undeclared interface written")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		pkts, _, err := pcapfile.ReadFile(name)
		if err != nil || len(pkts) != 1 || len(pkts[0].Data) != 128 || pkts[0].Info.Length != 1000 || !pkts[0].Info.Timestamp.Equal(ts) {
			t.Fatalf("%s: read back %d packets, %v", format, len(pkts), err)
		}
		if format == FormatPcap {
			continue
		}
		var isbs int
		for _, b := range blocks(t, name) {
			if b.typ != ngISB {
				continue
			}
			isbs++
			o := options(b.body, 12)
			got := [3]uint64{binary.LittleEndian.Uint64(o[isbIfRecv]), binary.LittleEndian.Uint64(o[isbIfDrop]), binary.LittleEndian.Uint64(o[isbFilterOK])}
			if got != [3]uint64{9, 5, 1} || o[isbOSDrop] != nil || o[isbUsrDeliv] != nil {
				t.Errorf("statistics block: recv, drop, accept %v, options %v", got, o)
			}
		}
		if isbs != 1 {
			t.Errorf("%d statistics blocks, want 1", isbs)
		}
	}
}
