package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// pkt is a packet of a test file: its interface (pcapng), time and tag,
// which its frame carries so that it can be recognised in the output.
type pkt struct {
	iface int
	at    time.Duration // after t0
	tag   string
}

// taggedFrame is an Ethernet frame carrying tag.
func taggedFrame(tag string) []byte {
	b := make([]byte, 60)
	copy(b, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5})
	copy(b[14:], tag)
	return b
}

func tagOf(data []byte) string { return string(bytes.TrimRight(data[14:], "\x00")) }

func ngIface(name, desc string) pcapgo.NgInterface {
	return pcapgo.NgInterface{Name: name, Description: desc, LinkType: layers.LinkTypeEthernet, SnapLength: 262144, TimestampResolution: 9}
}

// writeNg writes a pcapng file with ifaces and pkts.
func writeNg(t *testing.T, name string, ifaces []pcapgo.NgInterface, pkts []pkt) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriterInterface(f, ifaces[0], pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces[1:] {
		if _, err := w.AddInterface(ifc); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pkts {
		d := taggedFrame(p.tag)
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(d), Length: len(d), InterfaceIndex: p.iface}
		if err := w.WritePacket(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// writePcapNanos writes a nanosecond pcap file of Ethernet frames.
func writePcapNanos(t *testing.T, name string, pkts []pkt) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		d := taggedFrame(p.tag)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(d), Length: len(d)}, d); err != nil {
			t.Fatal(err)
		}
	}
}

// listed is a Source of given files, as a bucket's listing would give
// them (with their metadata's sources).
type listed []File

func (l listed) List(context.Context, Query) ([]File, int, error) { return l, 0, nil }

// localFile is a File read from disk, described as a listing would.
func localFile(name string, first, last time.Duration, sources ...string) File {
	return File{Name: name, First: t0.Add(first), Last: t0.Add(last), Sources: sources,
		open: func(context.Context) (io.ReadCloser, error) { return os.Open(name) }}
}

// got is a packet of the output.
type got struct {
	iface string
	at    time.Duration
	tag   string
}

func (g got) String() string { return fmt.Sprintf("%s@%v:%s", g.iface, g.at, g.tag) }

// readBack reads a merged capture.
func readBack(t *testing.T, name string) []got {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []got
	for {
		data, ci, _, err := r.ReadPacket()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		g := got{at: ci.Timestamp.Sub(t0), tag: tagOf(data)}
		if r.Pcapng() {
			ifc, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatal(err)
			}
			g.iface = ifc.Name
		}
		out = append(out, g)
	}
}

// run merges src's files for q into a file and returns it with the summary.
func run(t *testing.T, q Query, pcap bool, src ...Source) (string, Summary) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.pcapng")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), Config{Sources: src, Query: q, Output: f, Pcap: pcap})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out, sum
}

func checkPackets(t *testing.T, have []got, want []string) {
	t.Helper()
	var h []string
	for _, g := range have {
		h = append(h, g.String())
	}
	if !slices.Equal(h, want) {
		t.Errorf("packets:\n got %q\nwant %q", h, want)
	}
}

// Two sinks' pcapng files: interfaces named alike (name, description, link
// type, snap length) become one output interface, the others are kept
// apart; indexes are renumbered in the order the merge meets them, and
// Wireshark reads the same names and times.
func TestMergeRenumbersInterfaces(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pcapng"), filepath.Join(dir, "b.pcapng")
	writeNg(t, a, []pcapgo.NgInterface{ngIface("vm-1", "port"), ngIface("vm-2", "port")}, []pkt{
		{0, 1 * time.Second, "a1"}, {1, 3 * time.Second, "a2"}, {0, 5 * time.Second, "a3"},
	})
	// In b vm-1 is interface 1, and a pf0 and a vm-1 of another
	// description come first.
	writeNg(t, b, []pcapgo.NgInterface{ngIface("pf0", "port"), ngIface("vm-1", "port"), ngIface("vm-1", "other")}, []pkt{
		{0, 2 * time.Second, "b1"}, {1, 4 * time.Second, "b2"}, {2, 4 * time.Second, "b3"}, {1, 6 * time.Second, "b4"},
	})
	src := listed{localFile(a, 1*time.Second, 5*time.Second), localFile(b, 2*time.Second, 6*time.Second)}

	t.Run("every port", func(t *testing.T) {
		out, sum := run(t, Query{}, false, src)
		checkPackets(t, readBack(t, out), []string{"vm-1@1s:a1", "pf0@2s:b1", "vm-2@3s:a2", "vm-1@4s:b2", "vm-1@4s:b3", "vm-1@5s:a3", "vm-1@6s:b4"})
		// Numbered as the merge reads them (a2 is read before b1 is
		// written).
		if want := []string{"vm-1", "vm-2", "pf0", "vm-1"}; !slices.Equal(sum.Interfaces, want) {
			t.Errorf("interfaces %q, want %q", sum.Interfaces, want)
		}
		if sum.PacketsRead != 7 || sum.PacketsKept != 7 || sum.Read != 2 || !sum.First.Equal(t0.Add(time.Second)) || !sum.Last.Equal(t0.Add(6*time.Second)) {
			t.Errorf("summary %+v", sum)
		}
		// The two vm-1 of different descriptions stay two interfaces:
		// b2 and b3 must not share one.
		ifcs := tsharkFields(t, out, "frame.interface_id", "frame.interface_name", "frame.interface_description")
		want := []string{"0\tvm-1\tport", "2\tpf0\tport", "1\tvm-2\tport", "0\tvm-1\tport", "3\tvm-1\tother", "0\tvm-1\tport", "0\tvm-1\tport"}
		if !slices.Equal(ifcs, want) {
			t.Errorf("tshark reads interfaces\n%q\nwant\n%q", ifcs, want)
		}
	})
	t.Run("one port in a window", func(t *testing.T) {
		// [2s, 6s): a1 is before, b4 at the end, both left out.
		out, sum := run(t, Query{Ports: []string{"vm-1"}, From: t0.Add(2 * time.Second), To: t0.Add(6 * time.Second)}, false, src)
		checkPackets(t, readBack(t, out), []string{"vm-1@4s:b2", "vm-1@4s:b3", "vm-1@5s:a3"})
		if want := []string{"vm-1", "vm-1"}; !slices.Equal(sum.Interfaces, want) {
			t.Errorf("interfaces %q, want %q", sum.Interfaces, want)
		}
		times := tsharkFields(t, out, "frame.time_epoch")
		if len(times) != 3 || !strings.HasPrefix(times[0], strconv.FormatInt(t0.Unix()+4, 10)+".") {
			t.Errorf("tshark reads times %q", times)
		}
	})
}

// tsharkFields returns tshark's fields of every packet of name, one line
// each, tab-separated.
func tsharkFields(t *testing.T, name string, fields ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is missing: 'make test-deps' installs it")
	}
	args := []string{"-r", name, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", name, err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// A file broken part-way (a truncated record) gives its packets up to the
// damage and is named in the summary; a file that is no capture at all is
// named too; the other files' packets are all there.
func TestMergeDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good, cut, junk := filepath.Join(dir, "good.pcapng"), filepath.Join(dir, "cut.pcapng"), filepath.Join(dir, "junk.pcapng")
	writeNg(t, good, []pcapgo.NgInterface{ngIface("vm-1", "")}, []pkt{{0, 1 * time.Second, "g1"}, {0, 4 * time.Second, "g2"}})
	writeNg(t, cut, []pcapgo.NgInterface{ngIface("vm-1", "")}, []pkt{{0, 2 * time.Second, "c1"}, {0, 3 * time.Second, "c2"}, {0, 5 * time.Second, "c3"}})
	st, err := os.Stat(cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cut, st.Size()-10); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, sum := run(t, Query{}, false, listed{
		localFile(good, 1*time.Second, 4*time.Second), localFile(cut, 2*time.Second, 5*time.Second), localFile(junk, 3*time.Second, 3*time.Second),
	})
	checkPackets(t, readBack(t, out), []string{"vm-1@1s:g1", "vm-1@2s:c1", "vm-1@3s:c2", "vm-1@4s:g2"})
	if len(sum.Damaged) != 2 || !strings.HasPrefix(sum.Damaged[0], junk+": ") || !strings.HasPrefix(sum.Damaged[1], cut+": ") {
		t.Errorf("damaged %q, want %s then %s", sum.Damaged, junk, cut)
	}
}

// pcap files do not say which source a packet came from: with --port, a
// pcap file is used only when its one source is known (sinkd --split-by
// source, named in the object's metadata); others are skipped and named.
// Without --port every file is used.
func TestPcapSources(t *testing.T) {
	dir := t.TempDir()
	one, two, unknown, other := filepath.Join(dir, "one.pcap"), filepath.Join(dir, "two.pcap"), filepath.Join(dir, "unknown.pcap"), filepath.Join(dir, "other.pcap")
	writePcapNanos(t, one, []pkt{{0, 1 * time.Second, "one1"}, {0, 3 * time.Second, "one2"}})
	writePcapNanos(t, two, []pkt{{0, 2 * time.Second, "two1"}})
	writePcapNanos(t, unknown, []pkt{{0, 2500 * time.Millisecond, "unknown1"}})
	writePcapNanos(t, other, []pkt{{0, 1500 * time.Millisecond, "other1"}})
	trunc := localFile(two, 2*time.Second, 2*time.Second, "vm-1")
	trunc.Name, trunc.Partial = two+"#truncated", true
	src := listed{
		localFile(one, 1*time.Second, 3*time.Second, "vm-1"),
		localFile(two, 2*time.Second, 2*time.Second, "vm-1", "vm-2"),
		localFile(unknown, 2500*time.Millisecond, 2500*time.Millisecond),
		localFile(other, 1500*time.Millisecond, 1500*time.Millisecond, "vm-2"),
		trunc,
	}

	out, sum := run(t, Query{Ports: []string{"vm-1"}}, false, src)
	checkPackets(t, readBack(t, out), []string{"vm-1@1s:one1", "vm-1@3s:one2"})
	// other.pcap holds vm-2 only: not even opened.
	if want := []string{two, trunc.Name, unknown}; !slices.Equal(sum.Unfilterable, want) {
		t.Errorf("skipped as unfilterable %q, want %q", sum.Unfilterable, want)
	}
	if sum.Read != 4 {
		t.Errorf("%d files read, want 4 (other.pcap holds another port)", sum.Read)
	}

	out, sum = run(t, Query{}, false, src[:4])
	checkPackets(t, readBack(t, out), []string{"vm-1@1s:one1", "vm-2@1.5s:other1", "@2s:two1", "@2.5s:unknown1", "vm-1@3s:one2"})
	if len(sum.Unfilterable) != 0 {
		t.Errorf("skipped %q without --port", sum.Unfilterable)
	}
	// -F pcap: one link type, the same packets.
	out, _ = run(t, Query{}, true, src[:4])
	if tags := tsharkFields(t, out, "frame.len"); len(tags) != 5 {
		t.Errorf("pcap output: tshark reads %d packets, want 5", len(tags))
	}
}

// A directory of rotated files: files named as the bucket names them give
// their range and sink from the name and directory, others from their
// first packet and modification time; hidden directories (the spool) and
// files that are not captures are left out; files outside the window are
// not listed.
func TestDirList(t *testing.T) {
	dir := t.TempDir()
	loc := archive.Location{}
	keyed := filepath.Join(dir, filepath.FromSlash(loc.Key("sink-a", t0.Add(10*time.Second), t0.Add(20*time.Second), "cap.pcapng3")))
	if err := os.MkdirAll(filepath.Dir(keyed), 0o755); err != nil {
		t.Fatal(err)
	}
	writeNg(t, keyed, []pcapgo.NgInterface{ngIface("vm-1", "")}, []pkt{{0, 10 * time.Second, "k1"}, {0, 20 * time.Second, "k2"}})
	plain := filepath.Join(dir, "cap.pcap1")
	writePcapNanos(t, plain, []pkt{{0, 30 * time.Second, "p1"}, {0, 40 * time.Second, "p2"}})
	if err := os.Chtimes(plain, t0.Add(41*time.Second), t0.Add(41*time.Second)); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.pcap")
	writePcapNanos(t, old, []pkt{{0, -time.Hour, "o1"}})
	if err := os.Chtimes(old, t0.Add(-time.Hour), t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, ".sinkd-spool", "files")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	writePcapNanos(t, filepath.Join(spool, "0000-cap.pcap1"), []pkt{{0, 30 * time.Second, "p1"}})
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	files, skipped, err := (&Dir{Path: dir}).List(context.Background(), Query{From: t0, To: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 {
		t.Errorf("%d skipped, want 1 (notes.txt)", skipped)
	}
	var have []string
	for _, f := range files {
		have = append(have, fmt.Sprintf("%s sink=%q %v..%v", strings.TrimPrefix(f.Name, dir+"/"), f.Sink, f.First.Sub(t0), f.Last.Sub(t0)))
	}
	slices.Sort(have)
	want := []string{
		"2026/11/23/10/sink-a/20261123T100010.000000000Z_20261123T100020.000000000Z_cap.pcapng3 sink=\"sink-a\" 10s..20s",
		"cap.pcap1 sink=\"\" 30s..41s",
	}
	if !slices.Equal(have, want) {
		t.Errorf("listed\n%q\nwant\n%q", have, want)
	}

	// The window [15s, 35s) meets both files; their packets in it come
	// out merged.
	out, sum := run(t, Query{From: t0.Add(15 * time.Second), To: t0.Add(35 * time.Second)}, false, &Dir{Path: dir})
	checkPackets(t, readBack(t, out), []string{"vm-1@20s:k2", "@30s:p1"})
	if sum.Listed != 2 || sum.Skipped != 1 {
		t.Errorf("listed %d, skipped %d; want 2 and 1", sum.Listed, sum.Skipped)
	}
}

// A file whose packets are not in time order although its first packet is
// older than its last (the clock stepped back and forth, copies arrived
// slightly reordered): a packet at or after --to does not end the file,
// the in-window packets after it are kept, from pcapng and pcap alike.
func TestToKeepsPacketsAfterALaterOne(t *testing.T) {
	dir := t.TempDir()
	ng, pc := filepath.Join(dir, "stepped.pcapng"), filepath.Join(dir, "stepped.pcap")
	pkts := []pkt{{0, 1 * time.Second, "s1"}, {0, 12 * time.Second, "after-to"}, {0, 3 * time.Second, "s2"}, {0, 5 * time.Second, "s3"}, {0, 20 * time.Second, "last"}}
	writeNg(t, ng, []pcapgo.NgInterface{ngIface("vm-1", "")}, pkts)
	writePcapNanos(t, pc, pkts)
	q := Query{To: t0.Add(10 * time.Second)}
	for _, tc := range []struct {
		f    File
		want []string
	}{
		{localFile(ng, 1*time.Second, 20*time.Second), []string{"vm-1@1s:s1", "vm-1@3s:s2", "vm-1@5s:s3"}},
		{localFile(pc, 1*time.Second, 20*time.Second), []string{"@1s:s1", "@3s:s2", "@5s:s3"}},
	} {
		out, sum := run(t, q, false, listed{tc.f})
		checkPackets(t, readBack(t, out), tc.want)
		if sum.PacketsRead != uint64(len(pkts)) {
			t.Errorf("%s: %d packets read, want all %d", tc.f.Name, sum.PacketsRead, len(pkts))
		}
	}
}

// TestCaptureQuery: a capture's copies are those of the interfaces whose
// description names it, in a file of several captures too; a file whose
// metadata lists other captures only is not opened; a pcap file counts
// only when it is one source's and its metadata lists the capture alone.
func TestCaptureQuery(t *testing.T) {
	const a, b = "20261207-213045.123-3fa9c2", "20261207-213112.001-00aa01"
	dir := t.TempDir()
	both, onlyB, pcapA, pcapMixed := filepath.Join(dir, "both.pcapng"), filepath.Join(dir, "b.pcapng"), filepath.Join(dir, "a.pcap"), filepath.Join(dir, "mixed.pcap")
	writeNg(t, both, []pcapgo.NgInterface{ngIface("vm-1", "nic envelopes; dpcap capture "+a), ngIface("vm-1", "nic envelopes; dpcap capture "+b), ngIface("vm-2", "nic envelopes")}, []pkt{
		{0, 1 * time.Second, "a1"}, {2, 2 * time.Second, "x1"}, {1, 3 * time.Second, "b1"}, {0, 4 * time.Second, "a2"},
	})
	writeNg(t, onlyB, []pcapgo.NgInterface{ngIface("vm-1", "dpcap capture "+b)}, []pkt{{0, 5 * time.Second, "b2"}})
	writePcapNanos(t, pcapA, []pkt{{0, 6 * time.Second, "a3"}})
	writePcapNanos(t, pcapMixed, []pkt{{0, 7 * time.Second, "m1"}})
	withCaptures := func(f File, ids ...string) File { f.Captures = ids; return f }
	src := listed{
		localFile(both, 1*time.Second, 4*time.Second, "vm-1", "vm-2"),
		withCaptures(localFile(onlyB, 5*time.Second, 5*time.Second, "vm-1"), b),
		withCaptures(localFile(pcapA, 6*time.Second, 6*time.Second, "vm-1"), a),
		withCaptures(localFile(pcapMixed, 7*time.Second, 7*time.Second, "vm-1", "vm-2"), a, b),
	}
	out, sum := run(t, Query{Capture: a}, false, src)
	checkPackets(t, readBack(t, out), []string{"vm-1@1s:a1", "vm-1@4s:a2", "vm-1@6s:a3"})
	if sum.Read != 3 || !slices.Equal(sum.Unfilterable, []string{pcapMixed}) {
		t.Errorf("capture a: %d files read (want 3: b.pcapng holds b only), unfilterable %q", sum.Read, sum.Unfilterable)
	}
	out, _ = run(t, Query{Capture: b, Ports: []string{"vm-1"}}, false, src)
	checkPackets(t, readBack(t, out), []string{"vm-1@3s:b1", "vm-1@5s:b2"})
}
