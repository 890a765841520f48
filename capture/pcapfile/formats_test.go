package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

const nicEther = "../../testdata/envelopes/nic-ether.pcap"

// writeTemp writes b to a file of the test named name.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	name = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// readAll reads a file with both readers, ReadFile and OpenSource, and
// fails the test unless they agree; it returns the packets and the error
// that ended the reading (nil at the end of the file).
func readAll(t *testing.T, name string) ([]Packet, error) {
	t.Helper()
	pkts, _, err := ReadFile(name)
	src, serr := OpenSource(name)
	if (err == nil) != (serr == nil) && serr != nil {
		t.Fatalf("ReadFile: %v; OpenSource: %v", err, serr)
	}
	if serr != nil {
		return pkts, err
	}
	defer src.Close()
	i := 0
	for {
		b, rerr := src.Read(7)
		for _, p := range b {
			if i >= len(pkts) || !bytes.Equal(p.Data, pkts[i].Data) || !p.Timestamp.Equal(pkts[i].Info.Timestamp) || p.Length != pkts[i].Info.Length {
				t.Fatalf("packet %d: OpenSource and ReadFile disagree", i+1)
			}
			i++
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if err == nil {
				t.Fatalf("OpenSource: %v; ReadFile read to the end", rerr)
			}
			break
		}
	}
	if i != len(pkts) {
		t.Fatalf("OpenSource read %d packets, ReadFile %d", i, len(pkts))
	}
	return pkts, err
}

// tsharkTimes is each packet's frame.time_epoch as tshark reads name.
func tsharkTimes(t *testing.T, name string) []string {
	t.Helper()
	out, err := exec.Command("tshark", "-r", name, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", name, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// nicEtherFile is the bytes of nicEther and its packets.
func nicEtherFile(t *testing.T) ([]byte, []Packet) {
	t.Helper()
	b, err := os.ReadFile(nicEther)
	if err != nil {
		t.Fatal(err)
	}
	pkts, _, err := ReadFile(nicEther)
	if err != nil {
		t.Fatal(err)
	}
	return b, pkts
}

func epoch(ts time.Time) string { return fmt.Sprintf("%d.%09d", ts.Unix(), ts.Nanosecond()) }

// TestPowerOfTwoResolutions: pcapng timestamps in units of 2^-k s (if_tsresol
// with its high bit set) read to the nanosecond, rounded down as Wireshark
// does; powers of ten read as before. Two sections, several interfaces
// each, both byte orders; tshark agrees wherever it is exact (to 2^-33 and
// 10^-9: finer units overflow its arithmetic).
func TestPowerOfTwoResolutions(t *testing.T) {
	frames := testkit.ReadFrames(t, nicEther)
	type res struct {
		tsresol byte
		units   *big.Int // per second
		maxSecs uint64   // the seconds 64 bits hold
		tshark  bool
	}
	var all []res
	for _, k := range []uint{20, 30, 33, 1, 40, 63} {
		all = append(all, res{0x80 | byte(k), new(big.Int).Lsh(big.NewInt(1), k), 1<<(64-k) - 1, k <= 33})
	}
	for _, d := range []int64{6, 9} {
		u := new(big.Int).Exp(big.NewInt(10), big.NewInt(d), nil)
		all = append(all, res{byte(d), u, ^uint64(0) / u.Uint64(), true})
	}
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			ng := &testkit.Pcapng{Order: order}
			var want []time.Time
			var checked []bool
			r := rand.New(rand.NewPCG(3, 4))
			for section := range 2 {
				ifs := append(all[section*3:], all[:section*3]...)
				ng.Section(1, 0)
				for _, i := range ifs {
					ng.Interface(i.tsresol)
				}
				for n := range 60 {
					i := ifs[n%len(ifs)]
					secs := min(uint64(1795291901+n), i.maxSecs-uint64(n%2))
					frac := new(big.Int).SetUint64(r.Uint64N(i.units.Uint64()))
					ts := new(big.Int).Mul(new(big.Int).SetUint64(secs), i.units)
					ts.Add(ts, frac)
					ns := frac.Mul(frac, big.NewInt(1e9)).Div(frac, i.units)
					ng.Packet(uint32(n%len(ifs)), ts.Uint64(), frames[n%len(frames)])
					want = append(want, time.Unix(int64(secs), ns.Int64()))
					checked = append(checked, i.tshark)
				}
			}
			name := writeTemp(t, "res.pcapng", ng.Bytes())
			pkts, err := readAll(t, name)
			if err != nil || len(pkts) != len(want) {
				t.Fatalf("read %d packets (%v), want %d", len(pkts), err, len(want))
			}
			for i, p := range pkts {
				if !p.Info.Timestamp.Equal(want[i]) {
					t.Errorf("packet %d: %s, want %s (off by %v)", i+1, epoch(p.Info.Timestamp), epoch(want[i]), p.Info.Timestamp.Sub(want[i]))
				}
			}
			for i, got := range tsharkTimes(t, name) {
				if checked[i] && got != epoch(want[i]) {
					t.Errorf("packet %d: tshark reads %s, want %s", i+1, got, epoch(want[i]))
				}
			}
		})
	}
}

// TestPcapngVersions: a section of version 1.x is read (pcapgo skipped
// any but 1.0 without a word), as tcpdump reads it; one of another major
// version ends the reading with an error that names it, after the
// packets before it, as tcpdump does.
func TestPcapngVersions(t *testing.T) {
	frame := testkit.ReadFrames(t, nicEther)[0]
	for _, tt := range []struct {
		name     string
		versions [][2]uint16
		packets  int
		err      string // "" for none
	}{
		{"1.0 then 1.2", [][2]uint16{{1, 0}, {1, 2}}, 2, ""},
		{"1.0 then 1.1", [][2]uint16{{1, 0}, {1, 1}}, 2, ""},
		{"1.2 alone", [][2]uint16{{1, 2}}, 1, ""},
		{"1.0 then 2.0 then 1.0", [][2]uint16{{1, 0}, {2, 0}, {1, 0}}, 1, "section at byte 228: pcapng version 2.0, unknown: not read further"},
		{"2.0 first", [][2]uint16{{2, 0}, {1, 0}}, 0, "read pcapng section header: section at byte 0: pcapng version 2.0, unknown"},
	} {
		for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
			t.Run(tt.name+"/"+order.String(), func(t *testing.T) {
				ng := &testkit.Pcapng{Order: order}
				for i, v := range tt.versions {
					ng.Section(v[0], v[1]).Interface(0).Packet(0, uint64(1700000000+i)*1e6, frame)
				}
				name := writeTemp(t, "v.pcapng", ng.Bytes())
				pkts, err := readAll(t, name)
				if len(pkts) != tt.packets || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("%d packets, error %v; want %d, %q", len(pkts), err, tt.packets, tt.err)
				}
				out, terr := exec.Command("tcpdump", "-n", "-r", name).CombinedOutput()
				lines := strings.Count(string(out), "IP6 ")
				if lines != tt.packets || (terr == nil && !strings.Contains(string(out), "version")) != (tt.err == "") {
					t.Errorf("tcpdump printed %d packets (%v), we read %d:\n%s", lines, terr, len(pkts), out)
				}
			})
		}
	}
}

// TestSimplePacketTime: a simple packet block, which has no timestamp, is
// stamped the Unix epoch, as libpcap stamps it and editcap writes it, not
// the zero time (which pcapgo's writer replaces with the time of writing).
func TestSimplePacketTime(t *testing.T) {
	frames := testkit.ReadFrames(t, nicEther)
	ng := (&testkit.Pcapng{Order: binary.BigEndian}).Section(1, 0).Interface(0).
		Packet(0, 1700000000_000001, frames[0]).SimplePacket(frames[1]).SimplePacket(frames[2])
	name := writeTemp(t, "spb.pcapng", ng.Bytes())
	pkts, err := readAll(t, name)
	if err != nil || len(pkts) != 3 {
		t.Fatalf("%d packets, %v", len(pkts), err)
	}
	edited := filepath.Join(t.TempDir(), "edited.pcap")
	if out, err := exec.Command("editcap", "-F", "pcap", name, edited).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	want, _, err := ReadFile(edited)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if !p.Info.Timestamp.Equal(want[i].Info.Timestamp) || !bytes.Equal(p.Data, want[i].Data) {
			t.Errorf("packet %d: %s, editcap writes %s", i+1, epoch(p.Info.Timestamp), epoch(want[i].Info.Timestamp))
		}
	}
	if !pkts[1].Info.Timestamp.Equal(time.Unix(0, 0)) {
		t.Errorf("a simple packet block at %v, want the Unix epoch", pkts[1].Info.Timestamp)
	}
}

// TestModifiedPcap reads the modified (Kuznetzov) pcap format in both byte
// orders as tshark does: the records of the classic file it was made from,
// and a cut file's error at the record's real offset.
func TestModifiedPcap(t *testing.T) {
	orig, want := nicEtherFile(t)
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			mod := testkit.ModifiedPcap(t, orig, order)
			name := writeTemp(t, "mod.pcap", mod)
			pkts, err := readAll(t, name)
			if err != nil || len(pkts) != len(want) {
				t.Fatalf("%d packets (%v), want %d", len(pkts), err, len(want))
			}
			for i, p := range pkts {
				w := want[i]
				if !bytes.Equal(p.Data, w.Data) || p.Info.Length != w.Info.Length || !p.Info.Timestamp.Equal(w.Info.Timestamp) {
					t.Fatalf("packet %d: %d/%d bytes at %v, want %d/%d at %v", i+1, len(p.Data), p.Info.Length, p.Info.Timestamp, len(w.Data), w.Info.Length, w.Info.Timestamp)
				}
			}
			got, ref := tsharkTimes(t, name), tsharkTimes(t, nicEther)
			if strings.Join(got, " ") != strings.Join(ref, " ") {
				t.Errorf("tshark reads the modified file's times as %v, the original's as %v", got, ref)
			}
			// Cut in the third record's data: its header is at 24 + two
			// records of 24-byte headers.
			third := int64(FileHeaderLen + 2*24 + len(want[0].Data) + len(want[1].Data))
			_, err = readAll(t, writeTemp(t, "cut.pcap", mod[:third+30]))
			var re *RecordError
			if !errors.As(err, &re) || re.Packet != 3 || re.Offset != third {
				t.Errorf("cut file: %v, want packet 3 at byte %d", err, third)
			}
		})
	}
}

// TestGzip reads gzip-compressed pcap, pcapng and modified pcap as the
// uncompressed files.
func TestGzip(t *testing.T) {
	orig, want := nicEtherFile(t)
	ng := filepath.Join(t.TempDir(), "in.pcapng")
	if out, err := exec.Command("editcap", "-F", "pcapng", nicEther, ng).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	ngBytes, err := os.ReadFile(ng)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"pcap": orig, "pcapng": ngBytes, "modified pcap": testkit.ModifiedPcap(t, orig, binary.BigEndian)} {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		pkts, err := readAll(t, writeTemp(t, "in.gz", z.Bytes()))
		if err != nil || len(pkts) != len(want) {
			t.Errorf("gzip %s: %d packets (%v), want %d", name, len(pkts), err, len(want))
			continue
		}
		for i, p := range pkts {
			if !bytes.Equal(p.Data, want[i].Data) || !p.Info.Timestamp.Equal(want[i].Info.Timestamp) {
				t.Errorf("gzip %s: packet %d differs", name, i+1)
				break
			}
		}
	}
}

// TestLargePacketBlock: a packet block past libpcap's 16 MiB bound ends
// the reading with an error before it is read, plain or gzip-compressed:
// pcapgo would take several times its length in memory, and a gzip file
// of 400 KB can declare 400 MiB.
func TestLargePacketBlock(t *testing.T) {
	frame := testkit.ReadFrames(t, nicEther)[0]
	for _, tt := range []struct {
		size int
		err  string
	}{
		{1 << 20, ""},
		{16<<20 + 4, "more than 16 MiB: not read further"},
	} {
		ng := (&testkit.Pcapng{Order: binary.LittleEndian}).Section(1, 0).Interface(6).
			Packet(0, 1, frame).Packet(0, 2, make([]byte, tt.size)).Bytes()
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(ng)
		zw.Close()
		for name, b := range map[string][]byte{"pcapng": ng, "gzip pcapng": z.Bytes()} {
			pkts, err := readAll(t, writeTemp(t, "big.pcapng", b))
			if tt.err == "" && (err != nil || len(pkts) != 2) || tt.err != "" && (len(pkts) != 1 || err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("%s, a block of %d bytes: %d packets, %v; want %q", name, tt.size, len(pkts), err, tt.err)
			}
		}
	}
}

// TestLargeInterfaceDescription: ngLimit holds an interface description
// whole; one of 1 MiB of options reads (as in tcpdump and tshark), one
// past libpcap's 16 MiB bound ends the reading with an error saying so.
func TestLargeInterfaceDescription(t *testing.T) {
	frame := testkit.ReadFrames(t, nicEther)[0]
	for _, tt := range []struct {
		options int // of 64 KiB, in each description
		count   int // descriptions in the section
		err     string
	}{
		{16, 1, ""},
		{260, 1, "17039384 bytes, more than 16 MiB"},
		{16, 15, ""},
		// The reader keeps every description's options: a gzip file of a
		// megabyte would otherwise take gigabytes.
		{16, 17, "more than 16 MiB of interface descriptions, name and secrets blocks"},
	} {
		le := binary.LittleEndian
		head := (&testkit.Pcapng{Order: le}).Section(1, 0).Bytes()
		idb := le.AppendUint32(nil, BlockInterface)
		idb = le.AppendUint32(idb, 0) // the length, below
		idb = le.AppendUint16(idb, 1)
		idb = le.AppendUint16(idb, 0)
		idb = le.AppendUint32(idb, 0)
		for range tt.options {
			idb = le.AppendUint16(idb, 1) // opt_comment
			idb = le.AppendUint16(idb, 65532)
			idb = append(idb, bytes.Repeat([]byte{'x'}, 65532)...)
		}
		idb = le.AppendUint32(idb, 0)
		le.PutUint32(idb[4:], uint32(len(idb)+4))
		idb = le.AppendUint32(idb, uint32(len(idb)+4))
		pkt := (&testkit.Pcapng{Order: le}).Packet(0, 1, frame).Bytes()
		name := writeTemp(t, "idb.pcapng", bytes.Join([][]byte{head, bytes.Repeat(idb, tt.count), pkt}, nil))
		pkts, err := readAll(t, name)
		if tt.err == "" && (err != nil || len(pkts) != 1) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%d descriptions of %d KiB of options: %d packets, %v; want %q", tt.count, tt.options*64, len(pkts), err, tt.err)
		}
	}
}

// TestPowerOfTwoStatistics: an interface's statistics in units of 2^-30 s
// (their time, isb_starttime and isb_endtime) read to the nanosecond too.
func TestPowerOfTwoStatistics(t *testing.T) {
	frame := testkit.ReadFrames(t, nicEther)[0]
	const sec, frac = 1795291901, 987666666 // 2^-30 s
	units := uint64(sec)<<30 | frac
	want := time.Unix(sec, frac*1e9>>30) // 919836262 ns, as tshark reads a packet at it
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		ng := (&testkit.Pcapng{Order: order}).Section(1, 0).Interface(0x80|30).Interface(6).
			Packet(0, units, frame).Stats(0, units, units-1<<30, units+1<<30).Stats(1, 1e6, 0, 2e6)
		r, err := NewReader(bytes.NewReader(ng.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, _, _, err = r.ReadPacket()
		}
		if !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		ifc, err := r.Interface(0)
		if err != nil {
			t.Fatal(err)
		}
		if s := ifc.Statistics; !s.LastUpdate.Equal(want) || !s.StartTime.Equal(want.Add(-time.Second)) || !s.EndTime.Equal(want.Add(time.Second)) {
			t.Errorf("%v: statistics at %v from %v to %v, want %v ± 1 s", order, s.LastUpdate, s.StartTime, s.EndTime, want)
		}
		if ifc, _ = r.Interface(1); !ifc.Statistics.LastUpdate.Equal(time.Unix(1, 0)) || !ifc.Statistics.EndTime.Equal(time.Unix(2, 0)) {
			t.Errorf("%v: a microsecond interface's statistics at %v to %v, want 1 s to 2 s", order, ifc.Statistics.LastUpdate, ifc.Statistics.EndTime)
		}
	}
}
