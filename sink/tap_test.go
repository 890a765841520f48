package sink

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// recordingTap remembers what an engine offers it, as sink/live's taps
// see it.
type recordingTap struct {
	t       *testing.T
	sources []SourceInfo
	frames  []string // "source: first bytes"
	batches int
}

func (r *recordingTap) Source(i int, s SourceInfo) {
	if i != len(r.sources) {
		r.t.Errorf("source %d declared after %d sources", i, len(r.sources))
	}
	r.sources = append(r.sources, s)
}

func (r *recordingTap) Frame(src int, ts time.Time, data []byte, length int) {
	if src >= len(r.sources) {
		r.t.Errorf("frame of source %d before it was declared", src)
	}
	if len(data) > length || ts.IsZero() {
		r.t.Errorf("frame of %d bytes of %d at %v", len(data), length, ts)
	}
	r.frames = append(r.frames, fmt.Sprintf("%d: %x", src, data[:14]))
}

func (r *recordingTap) Flush() { r.batches++ }

// TestTap checks that a tap sees exactly the frames the file gets, each
// with its source named as the pcapng files name it, in pcap files (no
// interface per source) as in pcapng, and that the files are the same
// with a tap as without.
func TestTap(t *testing.T) {
	vm := readPcap(t, "../testdata/vm-traffic.pcap")
	tcp4, arp := vm[30].Data, vm[4].Data
	pkts := func() []capture.Packet {
		var p []capture.Packet
		for i, d := range [][]byte{tcp4, arp, tcp4, tcp4[:13], arp} {
			src := netip.MustParseAddrPort("[2001:db8::1]:1")
			if i%2 == 1 {
				src = netip.MustParseAddrPort("[2001:db8::2]:1")
			}
			p = append(p, capture.Packet{Data: d, Length: len(d), Src: src, FlowLabel: 5,
				Timestamp: time.Unix(1700000000, int64(i))})
		}
		return p
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, format := range []pcapout.Format{pcapout.FormatPcap, pcapout.FormatPcapng} {
		t.Run(format.String(), func(t *testing.T) {
			var files [2][]byte
			var tap *recordingTap
			for i, tapped := range []bool{false, true} {
				path := filepath.Join(t.TempDir(), "out")
				out, err := pcapout.Open(pcapout.Options{Path: path, Format: format, LinkType: layers.LinkTypeEthernet,
					SnapLen: 65535, Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				cfg := Config{Source: &fakeSource{framing: payloads, pkts: pkts()}, Output: out,
					PerSource: format == pcapout.FormatPcapng, Filter: etherTypeFilter(0x0800), BatchSize: 2, Logger: logger}
				if tapped {
					tap = &recordingTap{t: t}
					cfg.Tap = tap
				}
				if err := New(cfg).Run(); err != nil {
					t.Fatal(err)
				}
				if files[i], err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			}
			if format == pcapout.FormatPcap && !bytes.Equal(files[0], files[1]) {
				t.Error("the file differs with a tap")
			}
			want := []string{fmt.Sprintf("0: %x", tcp4[:14]), fmt.Sprintf("0: %x", tcp4[:14])}
			if fmt.Sprint(tap.frames) != fmt.Sprint(want) {
				t.Errorf("tap saw %q, want %q", tap.frames, want)
			}
			// The ARP frames of the second sender are filtered out after
			// their source is known: it is declared all the same.
			if len(tap.sources) != 2 || tap.sources[0].Interface.Name != "2001:db8::1 tag 5" ||
				tap.sources[1].Interface.Name != "2001:db8::2 tag 5" {
				t.Errorf("sources %+v", tap.sources)
			}
			if tap.batches != 3 {
				t.Errorf("%d batches flushed, want 3", tap.batches)
			}
		})
	}
}
