package pcapfile_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// split cuts stream as a reader of a connection does, given one byte more
// at a time: no unit before it is whole. It returns the units and each
// interface's name and statistics block's counts, as notes.
func split(t *testing.T, stream []byte) (units []pcapfile.Unit, notes []string) {
	t.Helper()
	var sp pcapfile.Splitter
	start := 0
	for end := start; end <= len(stream); end++ {
		u, n, err := sp.Next(stream[start:end])
		if err != nil {
			t.Fatalf("at byte %d: %v", start, err)
		}
		if n == 0 {
			continue
		}
		if n != end-start {
			t.Fatalf("a unit of %d bytes at byte %d, given %d", n, start, end-start)
		}
		units = append(units, u)
		switch u {
		case pcapfile.UnitInterface:
			notes = append(notes, "if "+sp.IfName(stream[start:end]))
		case pcapfile.UnitStats:
			iface, st, ok := sp.IfStats(stream[start:end])
			if !ok {
				t.Fatalf("statistics at byte %d unread", start)
			}
			notes = append(notes, fmt.Sprintf("stats %d %+v", iface, st))
		}
		start = end
	}
	if start != len(stream) {
		t.Fatalf("%d bytes left over", len(stream)-start)
	}
	return units, notes
}

func TestSplitter(t *testing.T) {
	var ng bytes.Buffer
	s := pcapout.NewStream(&ng, pcapout.StreamOptions{Format: pcapout.FormatPcapng})
	for _, name := range []string{"vm-1", "vm-2"} {
		if _, err := s.AddInterface(pcapout.Interface{Name: name}, layers.LinkTypeEthernet, 262144); err != nil {
			t.Fatal(err)
		}
	}
	frame := make([]byte, 61)
	for i := range 3 {
		if err := s.WritePacket(i%2, time.Unix(1, 0), frame, len(frame)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteStats(1, pcapout.InterfaceStats{Received: 9, Dropped: 7, Accepted: 2}, time.Unix(1, 0), time.Unix(2, 0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A second section, big-endian, with a simple packet block and
	// an interface without a name.
	be := (&testkit.Pcapng{Order: binary.BigEndian}).Section(1, 0).Interface(9).SimplePacket(frame).Packet(0, 5, frame)
	ngUnits, ngNotes := split(t, append(ng.Bytes(), be.Bytes()...))
	want := []pcapfile.Unit{pcapfile.UnitSection, pcapfile.UnitInterface, pcapfile.UnitInterface,
		pcapfile.UnitPacket, pcapfile.UnitPacket, pcapfile.UnitPacket, pcapfile.UnitStats,
		pcapfile.UnitSection, pcapfile.UnitInterface, pcapfile.UnitPacket, pcapfile.UnitPacket}
	wantNotes := []string{"if vm-1", "if vm-2", "stats 1 {Recv:9 Drop:7 Accept:2 HasRecv:true HasDrop:true HasAccept:true}", "if "}
	if !equalUnits(ngUnits, want) || !slices.Equal(ngNotes, wantNotes) {
		t.Errorf("pcapng: units %v, notes %q; want %v, %q", ngUnits, ngNotes, want, wantNotes)
	}

	pcap, err := os.ReadFile(testkit.WritePcap(t, [][]byte{frame, frame[:20]}))
	if err != nil {
		t.Fatal(err)
	}
	if units, _ := split(t, pcap); !equalUnits(units, []pcapfile.Unit{pcapfile.UnitFileHeader, pcapfile.UnitRecord, pcapfile.UnitRecord}) {
		t.Errorf("pcap: units %v", units)
	}
}

func equalUnits(a, b []pcapfile.Unit) bool { return bytes.Equal(unitBytes(a), unitBytes(b)) }

func unitBytes(us []pcapfile.Unit) []byte {
	b := make([]byte, len(us))
	for i, u := range us {
		b[i] = byte(u)
	}
	return b
}

func TestSplitterRefuses(t *testing.T) {
	huge := (&testkit.Pcapng{Order: binary.LittleEndian}).Section(1, 0).Bytes()
	huge = binary.LittleEndian.AppendUint32(huge, 6)
	huge = binary.LittleEndian.AppendUint32(huge, 64<<20)
	huge = append(huge, make([]byte, 8)...)
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"text", []byte("HTTP/1.1 200 OK\r\n\r\n"), "neither pcap nor pcapng"},
		{"a block past libpcap's bound", huge, "pcapng block of type 0x6 and length 67108864"},
	} {
		var sp pcapfile.Splitter
		var err error
		for b := tc.stream; err == nil; {
			var n int
			if _, n, err = sp.Next(b); n == 0 {
				break
			}
			b = b[n:]
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
