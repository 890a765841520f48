package testkit

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// DirNames lists the names in dir, sorted, failing the test if it cannot.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}

// WritePcap writes frames to a new Ethernet pcap file in the test's
// temporary directory (microsecond timestamps, snap length 65535), the i-th
// stamped 1700000000 s plus i µs, and returns its name.
func WritePcap(t testing.TB, frames [][]byte) string {
	t.Helper()
	return WritePcapSnap(t, frames, 0)
}

// WritePcapSnap is WritePcap with the snap length snap, as tcpdump -s
// writes: each record holds at most snap bytes of its frame and keeps the
// frame's whole length. Snap 0 writes the frames whole under a snap
// length of 65535.
func WritePcapSnap(t testing.TB, frames [][]byte, snap int) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(uint32(cmp.Or(snap, 65535)), layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		data := fr
		if snap > 0 && len(data) > snap {
			data = data[:snap]
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(data), Length: len(fr)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// ReadFrames reads the frames of a pcap or pcapng file, failing the test
// unless the file is complete.
func ReadFrames(t testing.TB, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	if bytes.HasPrefix(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err = pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	} else {
		r, err = pcapgo.NewReader(bytes.NewReader(b))
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("%s: frame %d: %v", name, len(frames), err)
		}
		frames = append(frames, bytes.Clone(data))
	}
}

// VMFrames are real frames: testdata/vm-traffic.pcap, a capture of
// ordinary VM traffic.
func VMFrames(t testing.TB) [][]byte {
	t.Helper()
	return ReadFrames(t, Testdata("vm-traffic.pcap"))
}

// FramesByInterface reads a pcapng file into its frames per interface
// name, failing the test unless the file is complete.
func FramesByInterface(t testing.TB, name string) map[string][][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got := map[string][][]byte{}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ifc, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got[ifc.Name] = append(got[ifc.Name], bytes.Clone(data))
	}
}
