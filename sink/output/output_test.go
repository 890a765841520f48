package output

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
)

// events records what the test kinds saw, in order.
var events []string

// recorder is a test output that records and hands on at once.
type recorder struct {
	name string
	env  Env
}

func (r *recorder) Closed(f pcapout.ClosedFile) {
	events = append(events, r.name+" closed "+filepath.Base(f.Name))
	r.env.Next(f)
}
func (r *recorder) Opened(f pcapout.OpenedFile) {
	events = append(events, r.name+" opened "+filepath.Base(f.Name))
}
func (r *recorder) Start() error                                { events = append(events, r.name+" start"); return nil }
func (r *recorder) Drain()                                      { events = append(events, r.name+" drain") }
func (r *recorder) Stop(w io.Writer)                            { io.WriteString(w, r.name+" stopped\n") }
func (r *recorder) Check(string, map[string]bool) (bool, error) { return r.name != "off", nil }
func (r *recorder) New(env Env) (Consumer, error) {
	r.env = env
	events = append(events, r.name+" changes after: "+strings.Repeat("yes", b2i(env.Changes)))
	return r, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func kind(name string, changes bool) Kind {
	return Kind{Name: name, Changes: changes, Flags: func(*flag.FlagSet) Flags { return &recorder{name: name} }}
}

func init() {
	// Registered in this order; a kind that changes files takes them last.
	Register(kind("gzip", true))
	Register(kind("store", false))
	Register(kind("off", false))
	Register(kind("stream", false))
}

// TestChain runs the registered kinds on a real rotating pcapout run: each
// file reaches them in order, those that change files last, every one of
// them told whether an output after it changes files; they start before
// hearing of opened files, drain in order and stop the last first.
func TestChain(t *testing.T) {
	events = nil
	fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
	cfg, err := Define(fs).Check("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cfg.New(Env{Out: "x"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r, err := pcapout.Open(pcapout.Options{Path: filepath.Join(dir, "cap.pcap"), LinkType: layers.LinkTypeEthernet, SnapLen: 65535})
	if err != nil {
		t.Fatal(err)
	}
	ch.Subscribe(r)
	if err := ch.Start(r); err != nil {
		t.Fatal(err)
	}
	iface := r.AddInterface(pcapout.Interface{Name: "vm-1"})
	frame := make([]byte, 60)
	for i := range 2 {
		r.WritePacket(iface, time.Unix(int64(i), 0), frame, len(frame))
		r.Rotate()
	}
	r.Close()
	var sum strings.Builder
	ch.Stop(&sum)
	want := []string{
		"gzip changes after: ", "stream changes after: yes", "store changes after: yes",
		"store start", "store opened cap.pcap", "stream start", "stream opened cap.pcap", "gzip start", "gzip opened cap.pcap",
	}
	for _, n := range []string{"cap.pcap", "cap.pcap1"} {
		next := map[string]string{"cap.pcap": "cap.pcap1", "cap.pcap1": "cap.pcap2"}[n]
		want = append(want, "store closed "+n, "stream closed "+n, "gzip closed "+n,
			"store opened "+next, "stream opened "+next, "gzip opened "+next)
	}
	want = append(want, "store closed cap.pcap2", "stream closed cap.pcap2", "gzip closed cap.pcap2",
		"store drain", "stream drain", "gzip drain")
	if !slices.Equal(events, want) {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if sum.String() != "gzip stopped\nstream stopped\nstore stopped\n" {
		t.Errorf("summary %q", sum.String())
	}
}

// Tap makes every test kind a Tapper.
func (r *recorder) Tap() sink.Tap { return recordingTap(r.name) }

// recordingTap records what one engine offers it.
type recordingTap string

func (t recordingTap) Source(i int, s sink.SourceInfo) {
	events = append(events, fmt.Sprintf("%s source %d %s", t, i, s.Interface.Name))
}
func (t recordingTap) Frame(src int, _ time.Time, data []byte, _ int) {
	events = append(events, fmt.Sprintf("%s frame %d %x", t, src, data))
}
func (t recordingTap) Flush() { events = append(events, string(t)+" flush") }

// TestChainTap checks that an engine's tap reaches every output that is a
// Tapper, each in the order of the chain.
func TestChainTap(t *testing.T) {
	cfg, err := Define(flag.NewFlagSet("sinkd", flag.ContinueOnError)).Check("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cfg.New(Env{Out: "x"})
	if err != nil {
		t.Fatal(err)
	}
	events = nil
	tap := ch.Tap()
	tap.Source(0, sink.SourceInfo{Interface: pcapout.Interface{Name: "vm-1"}})
	tap.Frame(0, time.Unix(1, 0), []byte{1, 2}, 2)
	tap.Flush()
	var want []string
	for _, ev := range []string{"source 0 vm-1", "frame 0 0102", "flush"} {
		for _, k := range []string{"store", "stream", "gzip"} {
			want = append(want, k+" "+ev)
		}
	}
	if !slices.Equal(events, want) {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if (&Chain{}).Tap() != nil {
		t.Error("a chain without Tappers has a tap")
	}
}
