package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
)

// corpusDir holds the public captures and the files derived from them
// (testdata/corpus/README.md says where each came from).
const corpusDir = "../testdata/corpus"

// corpusFile is one capture of the corpus and how both tools read it.
type corpusFile struct {
	name   string   // under corpusDir
	ports  string   // sinkd --ports; "" for the defaults
	tshark []string // tshark's extra arguments (-d for a port not its default), or tsharkAlone
}

// tsharkAlone has tshark read a file by itself: mergecap (4.0) rewrites
// power-of-two timestamps (pcapng if_tsresol 2^-n) by up to a microsecond,
// gives simple packet blocks a time of 0, and fails on a file whose second
// section has interfaces of its own.
const tsharkAlone = "alone"

// corpus is every capture the comparison reads.
var corpus = []corpusFile{
	{name: "tcpdump/vxlan.pcap"},
	{name: "tcpdump/vxlan_port_8472.pcap", ports: "vxlan=8472", tshark: []string{"-d", "udp.port==8472,vxlan"}},
	{name: "tcpdump/geneve.pcap"},
	{name: "tcpdump/geneve-gcp.pcap"},
	{name: "tcpdump/gso-ipv4-vxlan-ipv4.pcap"},
	{name: "tcpdump/gso-ipv6-geneve-ipv6.pcap"},
	{name: "tcpdump/erspan-type-i-3.pcap"},
	{name: "tcpdump/erspan-type-i-4.pcap"},
	{name: "tcpdump/erspan-type-ii-2.pcap"},
	{name: "tcpdump/erspan-type-ii-3.pcap"},
	{name: "tcpdump/erspan-type-iii-ft-0.pcap"},
	{name: "tcpdump/erspan-type-iii-ft-7.pcap"},
	{name: "tcpdump/erspan-type-iii-pb-1.pcap"},
	{name: "tcpdump/various_gre.pcap"},
	// VXLAN-GPE on its own port: tshark decodes NSH; a port mapped to
	// vxlan must not take NSH for Ethernet (vxlan-gpe holds 4790 by
	// default, so it is turned off).
	{name: "tcpdump/nsh-over-vxlan-gpe.pcap", ports: "vxlan-gpe=0,vxlan=4790"},
	{name: "zeek/erspan.pcap"},
	{name: "zeek/erspanI.pcap"},
	{name: "zeek/erspanII.pcap"},
	{name: "zeek/erspanIII.pcap"},
	{name: "zeek/gre-erspan3-dot1q.pcap"},
	{name: "zeek/geneve-arp.pcap"},
	{name: "zeek/geneve-ipv6.pcap"},
	{name: "zeek/geneve-many-options.pcap"},
	{name: "zeek/geneve-tagged-udp-packet.pcap"},
	{name: "zeek/geneve-47101.pcap"},
	{name: "zeek/geneve-truncated.pcapng"},
	{name: "zeek/geneve-vxlan-dns-truncated.pcap"},
	{name: "zeek/vxlan-triple-v2.pcap"},
	{name: "zeek/vxlan-encapsulated-http.pcap"},
	{name: "zeek/pcapng-multi-interface.pcapng"},
	{name: "suricata-verify/vxlan-decoder-01.pcap"},
	{name: "suricata-verify/vxlan-non-zero-reserved-fields.pcap"},
	{name: "suricata-verify/vxlan-arp.pcap"},
	{name: "suricata-verify/geneve-decoder.pcap"},
	{name: "suricata-verify/decode-erspan-typeI-02.pcap"},
	{name: "arkime/gre-erspan-vxlan.pcap"},
	{name: "gopacket/test202.pcapng"},
	{name: "gopacket/test202-be.pcapng"},
	{name: "derived/geneve-tsresol-2-30.pcapng", tshark: []string{tsharkAlone}},
	{name: "derived/vxlan-tsresol-2-20.pcapng", tshark: []string{tsharkAlone}},
	{name: "derived/vxlan.pcapng.gz"},
	{name: "derived/vxlan-modified.pcap"},
	{name: "derived/vxlan-snap60.pcap"},
	{name: "derived/vxlan-trailer-snap100.pcap"},
	{name: "derived/geneve-ipv6-fragments.pcap"},
	{name: "derived/tzsp.pcap"},
	{name: "derived/vxlan-qinq.pcap"},
	{name: "derived/vxlan-simple-blocks.pcapng", tshark: []string{tsharkAlone}},
	{name: "derived/sections-linktypes.pcapng", tshark: []string{tsharkAlone}},
}

// The kinds of difference.
const (
	diffMissing = "missing" // tshark decodes an inner frame, sinkd wrote none
	diffExtra   = "extra"   // sinkd wrote a frame tshark does not decode
	diffBytes   = "bytes"   // the inner frame's captured bytes differ
	diffLength  = "length"  // its original length differs
	diffTime    = "time"    // its timestamp differs (to the nanosecond)
	diffRefused = "refused" // sinkd could not read the file
)

// TestCorpusMatchesTshark converts every capture of the public corpus with
// sinkd -r and compares what it writes, frame for frame, with the inner
// frames tshark decodes in the same file: bytes, original length and
// timestamp to the nanosecond, reassembled outer fragments included.
func TestCorpusMatchesTshark(t *testing.T) {
	var (
		mu     sync.Mutex
		frames int // inner frames tshark decodes in the corpus
	)
	views := tsharkViews(t, corpus)
	t.Run("files", func(t *testing.T) {
		for _, c := range corpus {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				mu.Lock()
				frames += len(views[c.name].inner)
				mu.Unlock()
				for _, d := range compareCorpusFile(t, c, views[c.name]) {
					t.Errorf("%s", d)
				}
			})
		}
	})
	if frames == 0 {
		t.Fatal("tshark decodes no inner frame in the whole corpus: the comparison compared nothing")
	}
	t.Logf("%d files, %d inner frames decoded by tshark", len(corpus), frames)
}

// innerFrame is one frame as a capture file holds it.
type innerFrame struct {
	frame  int   // tshark's frame number in the input
	ns     int64 // timestamp, Unix nanoseconds
	length int   // original length
	data   []byte
	// etherType is set when tshark decodes a bare protocol (IP, ARP)
	// after the envelope: sinkd writes it behind a synthetic Ethernet
	// header of this type, so data is what follows that header.
	etherType uint16
}

// corpusDiff is one difference between sinkd's and tshark's inner frames.
type corpusDiff struct {
	file   string
	frame  int
	what   string
	detail string
}

func (d corpusDiff) String() string {
	return fmt.Sprintf("%s frame %d: %s: %s", d.file, d.frame, d.what, d.detail)
}

// compareCorpusFile returns where sinkd's conversion of c differs from the
// inner frames tshark decodes.
func compareCorpusFile(t *testing.T, c corpusFile, view tsharkView) []corpusDiff {
	in := filepath.Join(corpusDir, c.name)
	want := view.inner
	out := filepath.Join(t.TempDir(), "inner.pcap")
	args := []string{"-r", in, "-w", out}
	if c.ports != "" {
		args = append(args, "--ports", c.ports)
	}
	msg, err := exec.Command(bin("sinkd"), args...).CombinedOutput()
	if err != nil {
		return []corpusDiff{{c.name, 0, diffRefused, fmt.Sprintf("sinkd %s: %v: %s (tshark decodes %d inner frames)",
			strings.Join(args, " "), err, strings.TrimSpace(string(msg)), len(want))}}
	}
	pkts, _, err := pcapfile.ReadFile(out)
	if err != nil {
		t.Fatalf("read sinkd's output of %s: %v", c.name, err)
	}
	got := make([]innerFrame, len(pkts))
	for i, p := range pkts {
		got[i] = innerFrame{frame: view.firstAt[p.Info.Timestamp.UnixNano()], ns: p.Info.Timestamp.UnixNano(), length: p.Info.Length, data: p.Data}
	}
	diffs := diffInner(c.name, want, got)
	if slices.ContainsFunc(want, func(w innerFrame) bool { return w.ns == noTime }) {
		diffs = append(diffs, sameTimesTwice(t, c.name, args, want, got)...)
	}
	return diffs
}

// sameTimesTwice converts a file holding packets without a time (tshark
// shows none) again: whatever time sinkd gives them, it must give it
// every time.
func sameTimesTwice(t *testing.T, file string, args []string, want, got []innerFrame) []corpusDiff {
	out := filepath.Join(t.TempDir(), "again.pcap")
	args = slices.Clone(args)
	args[slices.Index(args, "-w")+1] = out
	if msg, err := exec.Command(bin("sinkd"), args...).CombinedOutput(); err != nil {
		t.Fatalf("sinkd %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	again, _, err := pcapfile.ReadFile(out)
	if err != nil {
		t.Fatalf("read sinkd's output of %s: %v", file, err)
	}
	var diffs []corpusDiff
	for i := range min(len(got), len(again), len(want)) {
		if ns := again[i].Info.Timestamp.UnixNano(); ns != got[i].ns && want[i].ns == noTime {
			diffs = append(diffs, corpusDiff{file, want[i].frame, diffTime, fmt.Sprintf("a packet without a time: sinkd gave it %d ns, then %d ns on a second run", got[i].ns, ns)})
		}
	}
	return diffs
}

// diffInner walks both lists in order. Frames are paired by timestamp; one
// unpaired on either side is missing or extra, and a pair whose
// timestamps differ (a wrong clock shifts every frame) is compared as is.
func diffInner(file string, want, got []innerFrame) []corpusDiff {
	var diffs []corpusDiff
	missing := func(w innerFrame) {
		diffs = append(diffs, corpusDiff{file, w.frame, diffMissing, fmt.Sprintf("tshark decodes a %d-byte inner frame, sinkd wrote none", w.length)})
	}
	extra := func(g innerFrame) {
		diffs = append(diffs, corpusDiff{file, g.frame, diffExtra, fmt.Sprintf("sinkd wrote a %d-byte frame (%d captured) that tshark does not decode", g.length, len(g.data))})
	}
	indexAt := func(fs []innerFrame, from int, ns int64) int {
		for k := from; k < len(fs) && k < from+16; k++ {
			if fs[k].ns == ns {
				return k
			}
		}
		return -1
	}
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got):
			missing(want[i])
			i++
			continue
		case i == len(want):
			extra(got[j])
			j++
			continue
		}
		w, g := want[i], got[j]
		if w.ns != g.ns && w.ns != noTime {
			if k := indexAt(got, j, w.ns); k > j {
				for ; j < k; j++ {
					extra(got[j])
				}
				continue
			}
			if k := indexAt(want, i, g.ns); k > i {
				for ; i < k; i++ {
					missing(want[i])
				}
				continue
			}
			diffs = append(diffs, corpusDiff{file, w.frame, diffTime, fmt.Sprintf("sinkd %d ns, tshark %d ns (%+d ns)", g.ns, w.ns, g.ns-w.ns)})
		}
		data, length := g.data, g.length
		if w.etherType != 0 {
			if len(data) < 14 || uint16(data[12])<<8|uint16(data[13]) != w.etherType {
				diffs = append(diffs, corpusDiff{file, w.frame, diffBytes, fmt.Sprintf("tshark decodes a bare protocol (EtherType %#04x); sinkd's frame does not carry it behind an Ethernet header: % x", w.etherType, data[:min(len(data), 14)])})
				i, j = i+1, j+1
				continue
			}
			data, length = data[14:], length-14
		}
		if !bytes.Equal(data, w.data) {
			diffs = append(diffs, corpusDiff{file, w.frame, diffBytes, fmt.Sprintf("sinkd %d bytes, tshark %d bytes; first difference at byte %d", len(data), len(w.data), firstDifference(data, w.data))})
		}
		if length != w.length {
			diffs = append(diffs, corpusDiff{file, w.frame, diffLength, fmt.Sprintf("sinkd %d, tshark %d", length, w.length)})
		}
		i, j = i+1, j+1
	}
	return diffs
}

func firstDifference(a, b []byte) int {
	for k := range min(len(a), len(b)) {
		if a[k] != b[k] {
			return k
		}
	}
	return min(len(a), len(b))
}

// tsharkLayer is one protocol of a packet as tshark -T json -x prints it:
// the bytes it covers (its _raw entry) and its fields.
type tsharkLayer struct {
	name   string
	hex    string
	pos    int
	fields map[string]json.RawMessage
}

// tsharkPacket keeps the layers of a packet in order, and duplicates (an
// inner eth after an outer one), which a map would lose.
type tsharkPacket struct {
	layers []tsharkLayer
}

func (p *tsharkPacket) UnmarshalJSON(b []byte) error {
	var doc struct {
		Source struct {
			Layers json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(doc.Source.Layers))
	if _, err := dec.Token(); err != nil {
		return err
	}
	raw := map[string]tsharkLayer{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(key, "_raw"); ok {
			l, err := parseRaw(v)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			l.name = name
			raw[name] = l
			if name == "frame" {
				p.layers = append(p.layers, l)
			}
			continue
		}
		l, ok := raw[key]
		if !ok {
			continue // a layer without bytes (tshark's own notes)
		}
		delete(raw, key)
		if err := json.Unmarshal(v, &l.fields); err != nil {
			l.fields = nil // not an object
		}
		if key == "frame" {
			p.layers[0].fields = l.fields
			continue
		}
		p.layers = append(p.layers, l)
	}
	return nil
}

// parseRaw reads a _raw entry: [hex, position, length, bitmask, type].
func parseRaw(v json.RawMessage) (tsharkLayer, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(v, &a); err != nil || len(a) < 2 {
		return tsharkLayer{}, fmt.Errorf("not a raw entry: %.80s", v)
	}
	var l tsharkLayer
	if err := json.Unmarshal(a[0], &l.hex); err != nil {
		return tsharkLayer{}, err
	}
	return l, json.Unmarshal(a[1], &l.pos)
}

// field returns a layer's field as a number (-1 when absent).
func (l tsharkLayer) field(name string) int {
	var s string
	if json.Unmarshal(l.fields[name], &s) != nil {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// reassembled finds the data of outer IP fragments tshark put back
// together in this packet (ip.fragments or ipv6.fragments, at any depth
// of the layer's fields).
func reassembled(fields map[string]json.RawMessage) []byte {
	for k, v := range fields {
		if k == "ip.fragments_raw" || k == "ipv6.fragments_raw" {
			if l, err := parseRaw(v); err == nil {
				if b, err := hex.DecodeString(l.hex); err == nil {
					return b
				}
			}
		}
		var sub map[string]json.RawMessage
		if len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &sub) == nil {
			if b := reassembled(sub); b != nil {
				return b
			}
		}
	}
	return nil
}

// envelopes are the protocols, as tshark names them, whose payload sinkd
// writes: the layer right after one is the inner frame.
var envelopes = map[string]bool{"vxlan": true, "vxlan_gpe": true, "geneve": true, "erspan": true, "tzsp": true}

// bareTypes are the protocols an envelope may carry without an Ethernet
// header, and the EtherType sinkd's synthetic header gives each.
var bareTypes = map[string]uint16{"ip": 0x0800, "ipv6": 0x86dd, "arp": 0x0806}

// tsharkView is what tshark makes of one file of the corpus: the inner
// frame of each packet that holds an envelope, and the first frame number
// at each timestamp (to name the input frame of a frame sinkd wrote).
type tsharkView struct {
	inner   []innerFrame
	firstAt map[int64]int
}

// tsharkViews has tshark decode the whole corpus. Starting tshark costs
// more than decoding a file of the corpus, so the files are decoded in one
// run over their concatenation (mergecap -a: the same library reads them
// as tshark would), split again by capinfos' packet counts; a file with
// its own tshark arguments, or whose timestamps mergecap would rewrite, is
// decoded alone (tsharkAlone).
func tsharkViews(t *testing.T, files []corpusFile) map[string]tsharkView {
	views := map[string]tsharkView{}
	var merged []string
	for _, c := range files {
		if c.tshark == nil {
			merged = append(merged, filepath.Join(corpusDir, c.name))
			continue
		}
		alone := slices.DeleteFunc(slices.Clone(c.tshark), func(a string) bool { return a == tsharkAlone })
		views[c.name] = splitView(tsharkDecode(t, filepath.Join(corpusDir, c.name), alone))
	}
	out, err := exec.Command("capinfos", append([]string{"-c", "-M", "-T", "-r"}, merged...)...).Output()
	if err != nil {
		t.Fatalf("capinfos: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, n, _ := strings.Cut(line, "\t")
		counts[name], _ = strconv.Atoi(n)
	}
	all := filepath.Join(t.TempDir(), "corpus.pcapng")
	if out, err := exec.Command("mergecap", append([]string{"-a", "-F", "pcapng", "-w", all}, merged...)...).CombinedOutput(); err != nil {
		t.Fatalf("mergecap: %v\n%s", err, out)
	}
	pkts := tsharkDecode(t, all, nil)
	for _, name := range merged {
		// capinfos counts packets; tshark also shows pcapng custom
		// blocks, without a time, as frames.
		n, k := counts[name], 0
		for ; k < len(pkts) && n > 0; k++ {
			if !pkts[k].block {
				n--
			}
		}
		if n > 0 {
			t.Fatalf("tshark read fewer packets of the corpus than capinfos counts in %s", name)
		}
		first := pkts[0].number - 1
		for i := range pkts[:k] {
			pkts[i].number -= first
			if pkts[i].inner != nil {
				pkts[i].inner.frame -= first
			}
		}
		name, _ = filepath.Rel(corpusDir, name)
		views[name] = splitView(pkts[:k])
		pkts = pkts[k:]
	}
	pkts = slices.DeleteFunc(pkts, func(p tsharkDecoded) bool { return p.block })
	if len(pkts) != 0 {
		t.Fatalf("tshark read %d packets more than capinfos counts in the corpus", len(pkts))
	}
	return views
}

func splitView(pkts []tsharkDecoded) tsharkView {
	v := tsharkView{firstAt: map[int64]int{}}
	for _, p := range pkts {
		if _, ok := v.firstAt[p.ns]; !ok && p.ns != noTime {
			v.firstAt[p.ns] = p.number
		}
		if p.inner != nil {
			v.inner = append(v.inner, *p.inner)
		}
	}
	return v
}

// tsharkDecoded is one packet as tshark decodes it.
type tsharkDecoded struct {
	number int
	ns     int64       // noTime for a pcapng simple packet block
	inner  *innerFrame // nil: no envelope
	block  bool        // a pcapng custom block, not a packet
}

// noTime is the timestamp of a packet that has none.
const noTime int64 = math.MinInt64

// tsharkDecode has tshark decode in, outer fragments reassembled.
func tsharkDecode(t *testing.T, in string, extra []string) []tsharkDecoded {
	args := append([]string{"-n", "-r", in, "-T", "json", "-x", "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE"}, extra...)
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkts []tsharkPacket
	if err := json.Unmarshal(out, &pkts); err != nil {
		t.Fatalf("tshark's JSON of %s: %v", in, err)
	}
	decoded := make([]tsharkDecoded, len(pkts))
	for i, p := range pkts {
		f := p.layers[0]
		number := f.field("frame.number")
		if _, ok := f.fields["frame.cb_pen"]; ok {
			// Not a packet: a pcapng custom block, which tshark
			// shows as a frame.
			decoded[i] = tsharkDecoded{number: number, ns: noTime, block: true}
			continue
		}
		ns := noTime // a simple packet block has none
		if epoch, ok := f.fields["frame.time_epoch"]; ok {
			var s string
			json.Unmarshal(epoch, &s)
			var err error
			if ns, err = parseEpoch(s); err != nil {
				t.Fatalf("%s frame %d: %v", in, number, err)
			}
		}
		decoded[i] = tsharkDecoded{number: number, ns: ns}
		if inner, ok := innerOf(t, in, p, number); ok {
			inner.frame, inner.ns = number, ns
			decoded[i].inner = &inner
		}
	}
	return decoded
}

// innerOf returns the inner frame of one packet, if it holds an envelope.
func innerOf(t *testing.T, in string, p tsharkPacket, number int) (innerFrame, bool) {
	frame, err := hex.DecodeString(p.layers[0].hex)
	if err != nil {
		t.Fatalf("%s frame %d: %v", in, number, err)
	}
	src := frame
	// The reported length of the data source and of each payload in it.
	end := p.layers[0].field("frame.len")
	for k := 1; k < len(p.layers); k++ {
		l := p.layers[k]
		b, err := hex.DecodeString(l.hex)
		if err != nil {
			t.Fatalf("%s frame %d, %s: %v", in, number, l.name, err)
		}
		if !at(src, l.pos, b) {
			continue // in another data source (tshark's notes, a reassembly of its own)
		}
		switch l.name {
		case "ip":
			if n := l.field("ip.len"); n >= 20 {
				end = min(end, l.pos+n)
			}
		case "ipv6":
			if n := l.field("ipv6.plen"); n > 0 {
				end = min(end, l.pos+40+n)
			}
		case "udp":
			if n := l.field("udp.length"); n >= 8 {
				end = min(end, l.pos+n)
			}
		}
		if r := reassembled(l.fields); r != nil {
			// What follows is in the reassembled payload.
			src, end = r, len(r)
		}
		if !envelopes[l.name] && !(l.name == "gre" && k+1 < len(p.layers) && p.layers[k+1].name == "eth") {
			continue
		}
		if k+1 == len(p.layers) {
			return innerFrame{}, false
		}
		next := p.layers[k+1]
		nb, err := hex.DecodeString(next.hex)
		if err != nil || next.pos <= l.pos || next.pos > l.pos+len(b) || !at(src, next.pos, nb) {
			return innerFrame{}, false // what follows is not a layer tshark decodes
		}
		etherType, bare := bareTypes[next.name]
		if next.name != "eth" && !bare {
			return innerFrame{}, false
		}
		captured := min(end, len(src))
		if captured < next.pos || next.name == "eth" && captured-next.pos < 14 || bare && captured == next.pos {
			return innerFrame{}, false
		}
		return innerFrame{length: end - next.pos, data: src[next.pos:captured], etherType: etherType}, true
	}
	return innerFrame{}, false
}

// at reports whether b is at pos in src (as far as src was captured).
func at(src []byte, pos int, b []byte) bool {
	if pos < 0 || pos > len(src) {
		return false
	}
	n := min(len(b), len(src)-pos)
	return bytes.Equal(src[pos:pos+n], b[:n])
}

// parseEpoch reads tshark's frame.time_epoch ("1368908504.837063000") as
// Unix nanoseconds, exactly.
func parseEpoch(s string) (int64, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("frame.time_epoch %q: %w", s, err)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("frame.time_epoch %q: %w", s, err)
	}
	return secs*1_000_000_000 + ns, nil
}
