package reassembly

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1700000000, 0)

// datagram4 is an unfragmented IPv4 packet of protocol proto carrying
// payload, with a valid header checksum.
func datagram4(id uint16, proto uint8, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], id)
	copy(h[12:], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, payload...)
}

// datagram6 is an unfragmented IPv6 packet with a destination options
// header (the unfragmentable part's extension headers) before UDP.
func datagram6(payload []byte) []byte {
	h := make([]byte, 48, 48+len(payload))
	h[0], h[6], h[7] = 0x60, 60, 64
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	h[8], h[23], h[24], h[39] = 0x20, 1, 0x20, 2
	h[40] = 17 // the options header's next header: UDP, 8 bytes of padding
	return append(h, payload...)
}

// fragments splits an unfragmented packet made by datagram4 or datagram6
// at the given offsets of its fragmentable part.
func fragments(t testing.TB, pkt []byte, cuts ...int) [][]byte {
	t.Helper()
	var hlen int
	if pkt[0]>>4 == 4 {
		hlen = 20
	} else {
		hlen = 48
	}
	hdr, data := pkt[:hlen], pkt[hlen:]
	bounds := append(append([]int{0}, cuts...), len(data))
	var out [][]byte
	for i := 0; i+1 < len(bounds); i++ {
		off, end := bounds[i], bounds[i+1]
		more := i+2 < len(bounds)
		out = append(out, fragment1(hdr, data[off:end], off, more, 0x1234))
	}
	return out
}

// fragment1 is one fragment of a packet whose unfragmentable part is hdr.
func fragment1(hdr, payload []byte, off int, more bool, id uint32) []byte {
	f := append([]byte(nil), hdr...)
	if f[0]>>4 == 4 {
		fo := uint16(off / 8)
		if more {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(f[2:], uint16(len(hdr)+len(payload)))
		binary.BigEndian.PutUint16(f[6:], fo)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:], checksum(f))
		return append(f, payload...)
	}
	fh := make([]byte, 8)
	fh[0] = f[40] // the options header named UDP; the fragment header does now
	f[40] = 44
	fo := uint16(off)
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], fo)
	binary.BigEndian.PutUint32(fh[4:], id)
	binary.BigEndian.PutUint16(f[4:], uint16(len(hdr)-40+8+len(payload)))
	return append(append(f, fh...), payload...)
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// step is one fragment given to Add, at t0 plus at.
type step struct {
	frag []byte
	at   time.Duration
}

func steps(frags [][]byte, order ...int) []step {
	var s []step
	for _, i := range order {
		s = append(s, step{frag: frags[i]})
	}
	return s
}

func TestReassemble(t *testing.T) {
	p4 := datagram4(7, 17, payload(3000))
	p6 := datagram6(payload(3000))
	f4 := fragments(t, p4, 1480, 2960)
	f6 := fragments(t, p6, 1232, 2464)
	over := append(slices.Clone(f4), fragment1(p4[:20], p4[20+1472:20+1472+16], 1472, true, 0))
	other := datagram4(7, 47, payload(3000)) // the same ID, another protocol
	fo := fragments(t, other, 1480)
	big := fragments(t, datagram4(9, 17, payload(65536)), 32768, 65512)
	tests := []struct {
		name    string
		cfg     Config
		steps   []step
		want    [][]byte // the datagrams Add returns, in order
		evicted map[Eviction]uint64
		held    uint64
	}{
		{name: "IPv4 in order", steps: steps(f4, 0, 1, 2), want: [][]byte{p4}},
		{name: "IPv4 reversed", steps: steps(f4, 2, 1, 0), want: [][]byte{p4}},
		{name: "IPv4 middle first", steps: steps(f4, 1, 2, 0), want: [][]byte{p4}},
		{name: "IPv6 with an options header, in order", steps: steps(f6, 0, 1, 2), want: [][]byte{p6}},
		{name: "IPv6 reversed", steps: steps(f6, 2, 0, 1), want: [][]byte{p6}},
		{
			name: "duplicates are dropped alone", steps: steps(f4, 0, 0, 1, 1, 2),
			want: [][]byte{p4}, evicted: map[Eviction]uint64{Duplicate: 2},
		},
		{
			name: "a fragment within one held is a duplicate",
			steps: append(steps(f4, 0), step{frag: fragment1(p4[:20], p4[20+8:20+24], 8, true, 0)},
				step{frag: f4[1]}, step{frag: f4[2]}),
			want: [][]byte{p4}, evicted: map[Eviction]uint64{Duplicate: 1},
		},
		{
			name: "an overlap drops the datagram", steps: steps(over, 0, 1, 3, 2),
			evicted: map[Eviction]uint64{Overlap: 3}, held: 1, // the last, alone again
		},
		{
			name:    "a second end drops the datagram",
			steps:   append(steps(f4, 2), step{frag: fragment1(p4[:20], p4[20+1480:20+2000], 1480, false, 0)}),
			evicted: map[Eviction]uint64{Overlap: 2},
		},
		{
			name:    "bytes beyond the end drop the datagram",
			steps:   append(steps(f4, 1), step{frag: fragment1(p4[:20], p4[20:20+1480], 0, false, 0)}),
			evicted: map[Eviction]uint64{Overlap: 2},
		},
		{
			name: "another protocol is another datagram", steps: append(steps(f4, 0, 1), append(steps(fo, 0), steps(f4, 2)...)...),
			want: [][]byte{p4}, held: 1,
		},
		{
			name: "a missing fragment times out",
			steps: []step{{frag: f4[0]}, {frag: f4[2], at: time.Second},
				{frag: fo[0], at: 31 * time.Second}, {frag: f4[1], at: 31 * time.Second}},
			evicted: map[Eviction]uint64{Timeout: 2}, held: 2,
		},
		{
			name:    "the timeout counts from the first fragment",
			cfg:     Config{Timeout: time.Second},
			steps:   []step{{frag: f4[0]}, {frag: f4[1], at: 500 * time.Millisecond}, {frag: f4[2], at: 1001 * time.Millisecond}},
			evicted: map[Eviction]uint64{Timeout: 2}, held: 1,
		},
		{
			name:  "the byte budget evicts the oldest",
			cfg:   Config{MaxBytes: 5000},
			steps: append(steps(fo, 0), steps(f4, 0, 1, 2)...),
			want:  [][]byte{p4}, evicted: map[Eviction]uint64{Memory: 1},
		},
		{
			// The last fragment alone takes a buffer up to its end.
			name:    "a datagram over the budget alone is evicted",
			cfg:     Config{MaxBytes: 2000},
			steps:   steps(f4, 0, 1, 2),
			evicted: map[Eviction]uint64{Memory: 3},
		},
		{
			name:    "the datagram count evicts the oldest",
			cfg:     Config{MaxDatagrams: 1},
			steps:   append(steps(f4, 0, 1), append(steps(fo, 0), steps(f4, 2)...)...),
			evicted: map[Eviction]uint64{Memory: 3}, held: 1,
		},
		{
			name: "over 65,535 bytes", steps: steps(big, 0, 1, 2),
			evicted: map[Eviction]uint64{TooBig: 3},
		},
		{
			name: "not a multiple of 8 before the end",
			steps: []step{{frag: fragment1(p4[:20], p4[20:20+100], 0, true, 0)},
				{frag: f4[0][:100]}, {frag: []byte{0x45}}, {frag: []byte{0x60}}, {frag: p6}},
			evicted: map[Eviction]uint64{Invalid: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.cfg)
			var got [][]byte
			for i, s := range tt.steps {
				before := slices.Clone(s.frag)
				out, o := r.Add(s.frag, t0.Add(s.at))
				if !bytes.Equal(s.frag, before) {
					t.Fatalf("step %d: Add changed its input", i)
				}
				if (o == Complete) != (out != nil) {
					t.Fatalf("step %d: outcome %d with %d bytes", i, o, len(out))
				}
				if out != nil {
					got = append(got, slices.Clone(out))
				}
				st := r.Stats()
				if st.Taken() != uint64(i+1) {
					t.Fatalf("step %d: %d fragments taken, %d accounted: %+v", i, i+1, st.Taken(), st)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d datagrams, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("datagram %d differs:\n got % x\nwant % x", i, got[i][:60], tt.want[i][:60])
				}
			}
			st := r.Stats()
			for e := range NumEvictions {
				if st.Evicted[e] != tt.evicted[e] {
					t.Errorf("evicted %s: %d, want %d", e, st.Evicted[e], tt.evicted[e])
				}
			}
			if st.Held != tt.held {
				t.Errorf("held %d, want %d", st.Held, tt.held)
			}
			if want := uint64(len(tt.want)); st.Completing != want {
				t.Errorf("completing %d, want %d", st.Completing, want)
			}
			if st.Bytes > uint64(r.cfg.MaxBytes) {
				t.Errorf("%d bytes held, over the budget", st.Bytes)
			}
			r.Flush()
			st = r.Stats()
			if st.Held != 0 || st.Datagrams != 0 || st.Bytes != 0 || st.Evicted[Incomplete] != tt.held || st.Taken() != uint64(len(tt.steps)) {
				t.Errorf("after Flush: %+v", st)
			}
		})
	}
}

func TestOtherProtocolIsNotTaken(t *testing.T) {
	r := New(Config{Protocol: func(_ bool, p uint8) bool { return p == 17 }})
	f := fragments(t, datagram4(1, 6, payload(100)), 48)
	if _, o := r.Add(f[0], t0); o != OtherProtocol {
		t.Fatalf("outcome %d", o)
	}
	if st := r.Stats(); st.Taken() != 0 || r.Pending() {
		t.Fatalf("counted: %+v", st)
	}
}

func TestEvictionsNamed(t *testing.T) {
	seen := map[string]bool{}
	for e := range NumEvictions {
		if n := e.String(); n == "" || n == "unknown" || seen[n] {
			t.Errorf("eviction %d named %q", e, n)
		}
		seen[e.String()] = true
	}
}

// BenchmarkReassemble measures a 9,000-byte datagram in 7 fragments.
func BenchmarkReassemble(b *testing.B) {
	f := fragments(b, datagram4(1, 17, payload(9000)), 1480, 2960, 4440, 5920, 7400, 8880)
	r := New(Config{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for _, fr := range f {
			binary.BigEndian.PutUint16(fr[4:], uint16(i)) // a new ID each time
			r.Add(fr, t0)
		}
	}
}
