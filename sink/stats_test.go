package sink

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// TestStatsAddCoversEveryField fills every counter with a distinct value:
// a counter added to Stats but forgotten in Add fails here.
func TestStatsAddCoversEveryField(t *testing.T) {
	var a Stats
	v := reflect.ValueOf(&a).Elem()
	n := uint64(1)
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.Uint64:
			f.SetUint(n)
			n++
		case reflect.Array:
			for j := range f.Len() {
				f.Index(j).SetUint(n)
				n++
			}
		}
	}
	errA, errB := errors.New("a"), errors.New("b")
	a.KernelDropsErr = errA
	sum := a
	b := a
	b.KernelDropsErr = errB
	sum.Add(b)
	sv := reflect.ValueOf(sum)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch f := v.Field(i); f.Kind() {
		case reflect.Uint64:
			if got := sv.Field(i).Uint(); got != 2*f.Uint() {
				t.Errorf("%s: %d, want %d", name, got, 2*f.Uint())
			}
		case reflect.Array:
			for j := range f.Len() {
				if got := sv.Field(i).Index(j).Uint(); got != 2*f.Index(j).Uint() {
					t.Errorf("%s[%d]: %d, want %d", name, j, got, 2*f.Index(j).Uint())
				}
			}
		}
	}
	if !errors.Is(sum.KernelDropsErr, errA) || !errors.Is(sum.KernelDropsErr, errB) {
		t.Errorf("kernel drop errors: %v", sum.KernelDropsErr)
	}
}

// TestEnginesAddUp runs two engines on sources of their own; their total
// is the sum of each, and the identity holds for each and for the sum.
func TestEnginesAddUp(t *testing.T) {
	frame := make([]byte, 60)
	src := netip.MustParseAddrPort("[2001:db8::1]:3000")
	mk := func(good, short int) *fakeSource {
		f := &fakeSource{framing: payloads, drops: uint64(good)}
		for range good {
			f.pkts = append(f.pkts, capture.Packet{Data: frame, Length: len(frame), Src: src, Timestamp: time.Unix(1, 0)})
		}
		for range short {
			f.pkts = append(f.pkts, capture.Packet{Data: frame[:10], Length: 10, Src: src, Timestamp: time.Unix(1, 0)})
		}
		return f
	}
	var engines []*Engine
	for i, counts := range [][2]int{{100, 3}, {250, 7}} {
		out, err := pcapout.Open(pcapout.Options{Path: filepath.Join(t.TempDir(), "out.pcap"), LinkType: layers.LinkTypeEthernet,
			SnapLen: 65535, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		e := New(Config{Source: mk(counts[0], counts[1]), Output: out})
		if err := e.Run(); err != nil {
			t.Fatalf("engine %d: %v", i, err)
		}
		engines = append(engines, e)
	}
	s := Total(engines...)
	if s.Received != 360 || s.Written != 350 || s.Rejected[decap.ShortFrame] != 10 || s.KernelDrops != 350 || s.Buffered != 0 {
		t.Errorf("total: received %d written %d short %d kernel drops %d buffered %d", s.Received, s.Written,
			s.Rejected[decap.ShortFrame], s.KernelDrops, s.Buffered)
	}
	for i, st := range []Stats{engines[0].Stats(), engines[1].Stats(), s} {
		if st.Accounted() != st.Received {
			t.Errorf("snapshot %d: accounted %d, received %d", i, st.Accounted(), st.Received)
		}
	}
}

// TestEverySnapshotAddsUp reads snapshots while the engine writes, rotates
// and flushes mid-batch through packets of every reason: each one must
// satisfy the identity (a packet written before it is received, or counted
// twice, fails here).
func TestEverySnapshotAddsUp(t *testing.T) {
	kept, dropped := make([]byte, 200), make([]byte, 200)
	kept[12] = 0x08 // IPv4, which the filter keeps
	var pkts []capture.Packet
	for i := range 50000 {
		frame := kept
		if i/int(decap.NumReasons)%2 == 1 {
			frame = dropped
		}
		r := byte(i % int(decap.NumReasons))
		pkts = append(pkts, capture.Packet{Data: append([]byte{r}, frame...), Length: len(frame) + 1, LinkType: layers.LinkTypeEthernet,
			Timestamp: time.Unix(1, 0)})
	}
	out, err := pcapout.Open(pcapout.Options{Path: filepath.Join(t.TempDir(), "out.pcap"), LinkType: layers.LinkTypeEthernet,
		SnapLen: 65535, FileSize: 20000, FlushBytes: 3000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Source: &fakeSource{pkts: pkts}, Decoder: scripted{}, Output: out, Filter: etherTypeFilter(0x0800),
		Allow: []AllowRule{{Prefix: netip.MustParsePrefix("2001:db8::/32")}}})
	done := make(chan error)
	go func() { done <- e.Run() }()
	snapshots := 0
	for running := true; running; snapshots++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		if s := e.Stats(); s.Accounted() != s.Received {
			t.Fatalf("snapshot %d: received %d, accounted %d: %+v", snapshots, s.Received, s.Accounted(), s)
		}
	}
	if snapshots < 10 {
		t.Errorf("only %d snapshots taken while the engine ran", snapshots)
	}
	s := e.Stats()
	if s.Received != 50000 || s.Rotations == 0 || s.Filtered == 0 || s.Written == 0 || s.MalformedTotal() == 0 || s.SkippedTotal() == 0 {
		t.Errorf("received %d, rotations %d, filtered %d, written %d", s.Received, s.Rotations, s.Filtered, s.Written)
	}
}
