package pcapout

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type ngBlock struct {
	typ  uint32
	body []byte
}

// blocks splits a little-endian pcapng file into blocks, checking framing.
func blocks(t *testing.T, name string) []ngBlock {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []ngBlock
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("%s: %d trailing bytes", name, len(b))
		}
		n := binary.LittleEndian.Uint32(b[4:8])
		if n%4 != 0 || int(n) > len(b) || binary.LittleEndian.Uint32(b[n-4:n]) != n {
			t.Fatalf("%s: bad block length %d", name, n)
		}
		out = append(out, ngBlock{binary.LittleEndian.Uint32(b[0:4]), b[8 : n-4]})
		b = b[n:]
	}
	return out
}

// options decodes a block's options from off.
func options(body []byte, off int) map[uint16][]byte {
	m := map[uint16][]byte{}
	for off+4 <= len(body) {
		code, l := binary.LittleEndian.Uint16(body[off:]), int(binary.LittleEndian.Uint16(body[off+2:]))
		if code == 0 {
			break
		}
		m[code] = body[off+4 : off+4+l]
		off += 4 + (l+3)&^3
	}
	return m
}

func TestPcapngInterfacesAndStatistics(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r, err := Open(Options{Path: filepath.Join(dir, "c.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet,
		Application: "dpcap sinkd", FileSize: 6 << 10, Now: clk.now, Logger: slog.New(slog.DiscardHandler),
		OSDrops: func() uint64 { return 7 }})
	if err != nil {
		t.Fatal(err)
	}
	ifaces := []int{r.AddInterface(Interface{Name: "vm-1", Description: "nic envelopes from 2001:db8::10, tag 1"})}
	r.Filtered(0)
	for i := range 10 {
		if i == 3 { // an interface declared mid-file, after packets
			ifaces = append(ifaces, r.AddInterface(Interface{Name: "pf0"}))
			if ifaces[1] != 1 {
				t.Fatalf("second interface got id %d", ifaces[1])
			}
			r.Filtered(1)
			r.Filtered(1)
		}
		r.WritePacket(ifaces[i%len(ifaces)], clk.t.Add(time.Duration(i)), numberedFrame(i, 1001), 1001)
	}
	r.Close()
	// Received and accepted count from the start; delivered, per file.
	var delivered [2]uint64
	for _, name := range []string{"c.pcapng", "c.pcapng1"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() > 6<<10 {
			t.Fatalf("%s: %v, over the -C limit with its statistics", name, err)
		}
		bs := blocks(t, filepath.Join(dir, name))
		if bs[0].typ != ngSHB || string(options(bs[0].body, 16)[shbUserAppl]) != "dpcap sinkd" {
			t.Fatalf("%s: no section header naming the application", name)
		}
		var names []string
		var epbs, isbs int
		for _, b := range bs {
			switch b.typ {
			case ngIDB:
				o := options(b.body, 8)
				names = append(names, string(o[ifName]))
				if o[ifTsresol][0] != 9 {
					t.Errorf("%s: timestamps not in nanoseconds", name)
				}
			case ngEPB:
				epbs++
			case ngISB:
				iface := binary.LittleEndian.Uint32(b.body)
				o := options(b.body, 12)
				recv := binary.LittleEndian.Uint64(o[isbIfRecv])
				accept := binary.LittleEndian.Uint64(o[isbFilterOK])
				delivered[iface] += binary.LittleEndian.Uint64(o[isbUsrDeliv])
				if recv-accept != uint64(iface+1) || accept != delivered[iface] {
					t.Errorf("%s: interface %d statistics recv %d accept %d, want %d filtered and %d accepted",
						name, iface, recv, accept, iface+1, delivered[iface])
				}
				if d, ok := o[isbOSDrop]; ok != (iface == 0) || ok && binary.LittleEndian.Uint64(d) != 7 {
					t.Errorf("%s: interface %d osdrop %v", name, iface, d)
				}
				isbs++
			}
		}
		if len(names) != 2 || names[0] != "vm-1" || names[1] != "pf0" || isbs != 2 || epbs == 0 {
			t.Errorf("%s: interfaces %v, %d packets, %d statistics blocks", name, names, epbs, isbs)
		}
		// gopacket's reader, written by others, reads it too.
		f, _ := os.Open(filepath.Join(dir, name))
		ng, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, _, err := ng.ReadPacketData(); err != nil {
				break
			}
			n++
		}
		f.Close()
		if n != epbs {
			t.Errorf("%s: gopacket reads %d packets, file has %d", name, n, epbs)
		}
	}
	if got := testkit.DirNames(t, dir); len(got) != 2 {
		t.Fatalf("files %v, want two 6 KiB files", got)
	}
	if delivered[0]+delivered[1] != 10 {
		t.Errorf("statistics deliver %v packets, want 10", delivered)
	}
}

func TestSplitBySource(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSplit(Options{Path: filepath.Join(dir, "out.pcap"), LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a := s.AddInterface(Interface{Name: "vm-1"})
	b := s.AddInterface(Interface{Name: "2001:db8::10 tag 3"})
	c := s.AddInterface(Interface{Name: "vm-1"}) // another hypervisor's vm-1
	for i := range 6 {
		s.WritePacket([]int{a, b, c}[i%3], time.Unix(int64(i), 0), numberedFrame(i, 100), 100)
	}
	s.Close()
	want := []string{"out-2001_db8__10_tag_3.pcap", "out-vm-1-2.pcap", "out-vm-1.pcap"}
	got := testkit.DirNames(t, dir)
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("files %v, want %v", got, want)
	}
	for _, f := range want {
		if n := len(readAll(t, filepath.Join(dir, f))); n != 2 {
			t.Errorf("%s holds %d packets, want 2", f, n)
		}
	}
	if s.Stats().Packets.Load() != 6 {
		t.Errorf("shared stats count %d packets", s.Stats().Packets.Load())
	}
}

func BenchmarkWritePacketPcapng(b *testing.B) {
	r, err := Open(Options{Path: filepath.Join(b.TempDir(), "b.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	r.AddInterface(Interface{Name: "vm-1"})
	data := numberedFrame(1, 1001)
	ts := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.WritePacket(0, ts, data, len(data))
	}
}

// TestPcapngLongNameIsCut checks a name longer than an option can hold is
// cut on a character boundary instead of wrapping the option's length.
func TestPcapngLongNameIsCut(t *testing.T) {
	name := filepath.Join(t.TempDir(), "long.pcapng")
	r, err := Open(Options{Path: name, Format: FormatPcapng, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	long := "a" + strings.Repeat("é", 40000) // 80,001 bytes
	r.AddInterface(Interface{Name: long, Description: "d"})
	r.WritePacket(0, time.Unix(1, 0), make([]byte, 60), 60)
	r.Close()
	for _, b := range blocks(t, name) {
		if b.typ != ngIDB {
			continue
		}
		got := options(b.body, 8)
		if n := len(got[ifName]); n != 65535 || !utf8.Valid(got[ifName]) || string(got[ifDescription]) != "d" {
			t.Errorf("if_name of %d bytes (valid UTF-8: %v), description %q", n, utf8.Valid(got[ifName]), got[ifDescription])
		}
	}
}

// TestPcapngSizeLimitCountsEveryBlock checks -C against pcapng's real
// overheads: packet blocks (not pcap's 16 bytes), interfaces declared
// mid-file and the statistics written at close all fit under the limit.
func TestPcapngSizeLimitCountsEveryBlock(t *testing.T) {
	dir := t.TempDir()
	const limit = 3000
	r, err := Open(Options{Path: filepath.Join(dir, "s.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet,
		FileSize: limit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []int
	for i := range 40 {
		if i%8 == 0 { // five sources: every file describes all it knows
			desc := fmt.Sprintf("source %d %s", i, strings.Repeat("d", 200))
			ifaces = append(ifaces, r.AddInterface(Interface{Name: fmt.Sprint("src", i), Description: desc}))
		}
		r.WritePacket(ifaces[len(ifaces)-1], time.Unix(int64(i), 0), numberedFrame(i, 201), 201)
	}
	r.Close()
	n := 0
	for _, name := range testkit.DirNames(t, dir) {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > limit {
			t.Errorf("%s: %d bytes, over -C %d", name, st.Size(), limit)
		}
		for _, b := range blocks(t, p) {
			if b.typ == ngEPB {
				n++
			}
		}
	}
	if n != 40 {
		t.Errorf("files hold %d packets, want 40", n)
	}
}

// TestPcapngInterfaceDeclaredWhenFull declares a source when the file has
// no room left for its description and statistics: it opens the next
// file instead of pushing this one past -C.
func TestPcapngInterfaceDeclaredWhenFull(t *testing.T) {
	dir := t.TempDir()
	const limit = 4000
	r, err := Open(Options{Path: filepath.Join(dir, "f.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet,
		FileSize: limit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a := r.AddInterface(Interface{Name: "a"})
	for i := 0; r.out.size() < limit-400; i++ {
		r.WritePacket(a, time.Unix(int64(i), 0), numberedFrame(i, 60), 60)
	}
	b := r.AddInterface(Interface{Name: "b", Description: strings.Repeat("d", 300)})
	r.WritePacket(b, time.Unix(100, 0), numberedFrame(100, 60), 60)
	r.Close()
	for _, name := range testkit.DirNames(t, dir) {
		if st, _ := os.Stat(filepath.Join(dir, name)); st.Size() > limit {
			t.Errorf("%s: %d bytes, over -C %d", name, st.Size(), limit)
		}
	}
}

// The capture id ends the description as written, and is read back from
// it; a description that only mentions the words is no id.
func TestCaptureInDescription(t *testing.T) {
	for _, tt := range []struct {
		ifc  Interface
		desc string
		id   string
	}{
		{Interface{Description: "nic envelopes from 2001:db8::10", Capture: "20261207-213045.123-3fa9c2"}, "nic envelopes from 2001:db8::10; dpcap capture 20261207-213045.123-3fa9c2", "20261207-213045.123-3fa9c2"},
		{Interface{Capture: "x"}, "dpcap capture x", "x"},
		{Interface{Description: "nic envelopes"}, "nic envelopes", ""},
		{Interface{Description: "not a dpcap capture here"}, "not a dpcap capture here", ""},
		{Interface{Description: "a; dpcap capture "}, "a; dpcap capture ", ""},
	} {
		if got := tt.ifc.description(); got != tt.desc {
			t.Errorf("%+v: description %q, want %q", tt.ifc, got, tt.desc)
		}
		if got := CaptureOf(tt.desc); got != tt.id {
			t.Errorf("CaptureOf(%q) = %q, want %q", tt.desc, got, tt.id)
		}
	}
}
