package e2e

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
)

// TestOfflineCaptureFormats converts the same envelopes from the formats
// and containers tshark reads that sinkd -r refused or misread:
// gzip-compressed pcapng, modified (Kuznetzov) pcap, pcapng in units of
// 2^-30 s, in a version 1.2 section, and in simple packet blocks. Each
// gives the frames of the plain file at the times tshark reads in the
// input (a simple packet block, which has none, at the Unix epoch, as
// editcap writes it).
func TestOfflineCaptureFormats(t *testing.T) {
	in := "../testdata/envelopes/nic-ether.pcap"
	ref, _ := convert(t, in)
	want := readFrames(t, ref)
	orig, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	pkts, _, err := pcapfile.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		name = filepath.Join(dir, name)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	ng := filepath.Join(dir, "in.pcapng")
	if out, err := exec.Command("editcap", "-F", "pcapng", in, ng).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	if out, err := exec.Command("gzip", "-k", ng).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v\n%s", err, out)
	}
	r := rand.New(rand.NewPCG(5, 6))
	binary30 := &testkit.Pcapng{Order: binary.BigEndian}
	binary30.Section(1, 0).Interface(0x80 | 30)
	minor2 := &testkit.Pcapng{Order: binary.LittleEndian}
	minor2.Section(1, 2).Interface(9)
	simple := &testkit.Pcapng{Order: binary.LittleEndian}
	simple.Section(1, 0).Interface(0)
	for i, p := range pkts {
		binary30.Packet(0, uint64(p.Info.Timestamp.Unix())<<30|r.Uint64N(1<<30), p.Data)
		minor2.Packet(0, uint64(p.Info.Timestamp.UnixNano()), p.Data)
		if i%2 == 0 {
			simple.Packet(0, uint64(p.Info.Timestamp.UnixMicro()), p.Data)
		} else {
			simple.SimplePacket(p.Data)
		}
	}
	for _, tt := range []struct{ name, file string }{
		{"gzip pcapng", ng + ".gz"},
		{"modified pcap", write("modified.pcap", testkit.ModifiedPcap(t, orig, binary.BigEndian))},
		{"2^-30 s", write("binary30.pcapng", binary30.Bytes())},
		{"section 1.2", write("minor2.pcapng", minor2.Bytes())},
		{"simple packet blocks", write("simple.pcapng", simple.Bytes())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, summary := convert(t, tt.file, "-F", "pcapng")
			equalFrames(t, readFrames(t, out), want)
			checkWithTools(t, out, len(want))
			wantTimes, got := tsharkFields(t, tt.file, "-e", "frame.time_epoch"), tsharkFields(t, out, "-e", "frame.time_epoch")
			for i := range wantTimes {
				if wantTimes[i] == "" {
					wantTimes[i] = "0.000000000"
				}
			}
			if strings.Join(got, " ") != strings.Join(wantTimes, " ") {
				t.Errorf("sinkd -r wrote the times\n%v\nwhere tshark reads the input's as\n%v\n%s", got, wantTimes, summary)
			}
		})
	}
}
