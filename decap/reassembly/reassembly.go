// Package reassembly puts fragmented IPv4 and IPv6 packets back together:
// the outer packets of envelopes that a path's MTU split, which a capture
// file or an AF_PACKET socket holds as fragments (a UDP socket gets them
// whole from the kernel).
//
// A datagram is identified as the kernel identifies it: by source,
// destination, protocol and identification for IPv4 (RFC 791), by source,
// destination and the fragment header's identification for IPv6 (RFC 8200).
// Its fragments may come in any order.
//
// Work and memory are bounded whatever the fragments are: a Reassembler
// holds at most Config.MaxBytes bytes (payload, headers and a fixed cost
// per fragment and per datagram) in at most Config.MaxDatagrams datagrams,
// and drops a datagram Config.Timeout after its first fragment, measured on
// the packets' own timestamps so that a capture file read back gives what
// live capture gave. A fragment costs one binary search and at most one
// copy of the datagram's fragment list (at most 8,192 entries, as fragments
// other than the last carry a multiple of 8 bytes).
//
// Overlaps are refused as Linux refuses them for IPv4 and IPv6 alike
// (RFC 5722): a fragment overlapping bytes already held, or disagreeing
// about where the datagram ends, drops the whole datagram, since which copy
// of the bytes the receiver kept is unknowable and a monitor must not show
// bytes the receiver may never have seen. A fragment that repeats bytes
// already held (a duplicate, which a mirror of both directions or a
// retransmitting sender produces) is dropped alone and the datagram kept.
//
// Every fragment given to Add is counted exactly once in Stats: held while
// its datagram is incomplete, then absorbed into a reassembled datagram (or
// the one completing it, returned to the caller) or evicted by reason.
package reassembly

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/dpcap/dpcap/decap"
)

// Defaults for a zero Config field.
const (
	// DefaultTimeout is Linux's ipfrag_time (net.ipv4.ipfrag_time and
	// net.ipv6.ip6frag_time): a receiver gives up on a datagram then, so
	// fragments arriving later never made a packet.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxBytes is Linux's ipfrag_high_thresh.
	DefaultMaxBytes = 4 << 20
	// DefaultMaxDatagrams bounds the datagrams in progress: the map and
	// the list of them stay small whatever the fragments' sizes.
	DefaultMaxDatagrams = 1024
)

// Costs charged to the byte budget besides the bytes held, so that tiny
// fragments cannot hold much more memory than the budget says.
const (
	fragmentCost = 16  // a span
	datagramCost = 256 // the datagram, its map entry and list links
)

// maxPayload is what IPv4's total length and IPv6's payload length can
// say at most.
const maxPayload = 65535

// Config bounds a Reassembler; zero fields take the defaults.
type Config struct {
	Timeout      time.Duration
	MaxBytes     int
	MaxDatagrams int
	// Protocol, when set, says which protocols (IPv4's protocol field, or
	// the IPv6 fragment header's next header, with v6 set) to reassemble;
	// fragments of others are returned as OtherProtocol and not counted.
	Protocol func(v6 bool, proto uint8) bool
}

// Eviction says why fragments were dropped.
type Eviction uint8

// The reasons fragments are dropped. Their String values are metric
// labels.
const (
	Timeout    Eviction = iota // the datagram was not complete within Timeout
	Memory                     // the datagram was evicted, oldest first, for MaxBytes or MaxDatagrams
	Overlap                    // a fragment overlapped another or disagreed about the end: the datagram is dropped
	Duplicate                  // the fragment repeats bytes already held: it alone is dropped
	TooBig                     // the datagram would exceed 65,535 bytes
	Invalid                    // the fragment cannot be used: cut short, empty, or not a multiple of 8 bytes before the end
	Incomplete                 // still incomplete at the end of the input (Flush)
	NumEvictions
)

var evictionNames = [NumEvictions]string{"timeout", "memory", "overlap", "duplicate", "too_big", "invalid", "incomplete"}

// String returns the eviction's metric label.
func (e Eviction) String() string {
	if e < NumEvictions {
		return evictionNames[e]
	}
	return "unknown"
}

// Stats counts fragments. Every fragment Add took (all but OtherProtocol)
// is in exactly one of Held, Absorbed, Completing or Evicted.
type Stats struct {
	// Held is the fragments of datagrams still incomplete, in
	// Datagrams datagrams holding Bytes bytes of the budget.
	Held      uint64
	Datagrams uint64
	Bytes     uint64
	// Completing counts the fragments that completed a datagram: Add
	// returned the datagram with them, so each is one packet to the
	// caller. Absorbed counts the other fragments of those datagrams.
	Completing uint64
	Absorbed   uint64
	Evicted    [NumEvictions]uint64
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.Held += o.Held
	s.Datagrams += o.Datagrams
	s.Bytes += o.Bytes
	s.Completing += o.Completing
	s.Absorbed += o.Absorbed
	for i := range s.Evicted {
		s.Evicted[i] += o.Evicted[i]
	}
}

// Taken sums the places a fragment Add took can be.
func (s Stats) Taken() uint64 { return s.Held + s.Completing + s.Absorbed + s.EvictedTotal() }

// EvictedTotal sums the fragments dropped.
func (s Stats) EvictedTotal() uint64 {
	var n uint64
	for _, v := range s.Evicted {
		n += v
	}
	return n
}

// Outcome says what Add did with a fragment.
type Outcome uint8

// The outcomes of Add.
const (
	Held          Outcome = iota // kept until its datagram is complete
	Complete                     // it completed its datagram, returned
	Dropped                      // counted in Stats.Evicted
	OtherProtocol                // a protocol Config.Protocol refuses; not counted
)

type key struct {
	src, dst [16]byte
	id       uint32
	proto    uint8 // IPv4 only: IPv6 keys on addresses and identification
	v6       bool
}

// span is a fragment's place in the fragmentable part: [off, end).
type span struct{ off, end uint32 }

type datagram struct {
	key   key
	start int64 // the first fragment's timestamp, in ns
	// header is the unfragmentable part of the fragment at offset 0
	// (IPv4 header with options; IPv6 header and the extension headers
	// before the fragment header), nil until it comes; next is where
	// IPv6's header names the fragment header.
	header  []byte
	next    int
	nextHdr uint8  // IPv6: the next header the fragment at offset 0 gives
	spans   []span // sorted by offset, never overlapping, never empty
	count   int    // fragments held: the spans and an empty last fragment
	data    []byte // the fragmentable part, at the fragments' offsets
	total   int    // the end the last fragment gives; -1 until it comes
	have    int    // bytes held
	cost    int    // bytes charged to the budget
	older   *datagram
	newer   *datagram
}

// Reassembler holds the fragments of incomplete datagrams. It is not safe
// for concurrent use: each of sinkd's engines has its own.
type Reassembler struct {
	cfg     Config
	pending map[key]*datagram
	oldest  *datagram // the list of datagrams by arrival of their first fragment
	newest  *datagram
	stats   Stats
	out     []byte // the datagram Add returned last
}

// New returns a reassembler bounded by cfg.
func New(cfg Config) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultMaxDatagrams
	}
	return &Reassembler{cfg: cfg, pending: map[key]*datagram{}}
}

// Stats returns the counts so far.
func (r *Reassembler) Stats() Stats { return r.stats }

// Pending reports whether datagrams are in progress.
func (r *Reassembler) Pending() bool { return r.oldest != nil }

// fragment is what Add parses out of one.
type fragment struct {
	key     key
	header  []byte // the unfragmentable part
	next    int    // IPv6: offset in header of the byte naming the fragment header
	nextHdr uint8  // IPv6: the fragment header's next header
	payload []byte
	off     int
	more    bool
}

// Add takes one fragment, the IP packet ip (from its IP header on, as
// captured) received at ts. When it completes a datagram, Add returns the
// reassembled IP packet, valid until the next call, and Complete.
func (r *Reassembler) Add(ip []byte, ts time.Time) ([]byte, Outcome) {
	now := ts.UnixNano()
	r.Expire(ts)
	var f fragment
	if !parse(ip, &f) {
		r.stats.Evicted[Invalid]++
		return nil, Dropped
	}
	if r.cfg.Protocol != nil && !r.cfg.Protocol(f.key.v6, f.proto()) {
		return nil, OtherProtocol
	}
	end := f.off + len(f.payload)
	switch {
	case end+len(f.header) > f.maxLen():
		r.drop(r.pending[f.key], TooBig)
		r.stats.Evicted[TooBig]++
		return nil, Dropped
	case f.more && (len(f.payload) == 0 || len(f.payload)%8 != 0):
		r.stats.Evicted[Invalid]++
		return nil, Dropped
	}
	d := r.pending[f.key]
	if d != nil && now-d.start > int64(r.cfg.Timeout) {
		r.drop(d, Timeout) // out of order in time: Expire went by it
		d = nil
	}
	if d == nil {
		d = r.create(f.key, now)
		if d == nil {
			r.stats.Evicted[Memory]++
			return nil, Dropped
		}
	}
	switch d.insert(&f) {
	case Duplicate:
		r.stats.Evicted[Duplicate]++
		return nil, Dropped
	case Overlap:
		r.drop(d, Overlap)
		r.stats.Evicted[Overlap]++
		return nil, Dropped
	}
	r.stats.Held++
	if d.total >= 0 && d.have == d.total && d.header != nil {
		if len(d.header)+d.total > f.maxLen() { // the first fragment's IPv4 options made it longer
			r.drop(d, TooBig)
			return nil, Dropped
		}
		return r.complete(d)
	}
	if !r.charge(d) {
		return nil, Dropped
	}
	return nil, Held
}

// proto is what Config.Protocol judges.
func (f *fragment) proto() uint8 {
	if f.key.v6 {
		return f.nextHdr
	}
	return f.key.proto
}

// maxLen is the longest a datagram may be with its unfragmentable part:
// IPv6's payload length leaves out the fixed header.
func (f *fragment) maxLen() int {
	if f.key.v6 {
		return maxPayload + 40
	}
	return maxPayload
}

// create starts a datagram at the newest end of the list, evicting the
// oldest when MaxDatagrams are in progress; nil when no datagram fits.
func (r *Reassembler) create(k key, now int64) *datagram {
	for len(r.pending) >= r.cfg.MaxDatagrams && r.oldest != nil {
		r.drop(r.oldest, Memory)
	}
	if datagramCost > r.cfg.MaxBytes {
		return nil
	}
	d := &datagram{key: k, start: now, total: -1, older: r.newest}
	if r.newest != nil {
		r.newest.newer = d
	} else {
		r.oldest = d
	}
	r.newest = d
	r.pending[k] = d
	r.stats.Datagrams++
	return d
}

// charge brings d's cost up to date, evicting the oldest datagrams while
// the budget is exceeded; when d alone exceeds it, d goes and charge
// reports false.
func (r *Reassembler) charge(d *datagram) bool {
	cost := datagramCost + len(d.header) + cap(d.data) + cap(d.spans)*fragmentCost
	r.stats.Bytes += uint64(cost - d.cost)
	d.cost = cost
	for r.stats.Bytes > uint64(r.cfg.MaxBytes) {
		victim := r.oldest
		if victim == d {
			if victim = d.newer; victim == nil {
				r.drop(d, Memory)
				return false
			}
		}
		r.drop(victim, Memory)
	}
	return true
}

// insert places f in d; it returns Duplicate or Overlap when f cannot go
// in, and NumEvictions when it went in.
func (d *datagram) insert(f *fragment) Eviction {
	off, end := uint32(f.off), uint32(f.off+len(f.payload))
	held := uint32(0) // the end of the bytes held
	if len(d.spans) > 0 {
		held = d.spans[len(d.spans)-1].end
	}
	switch {
	case d.total >= 0 && int(end) > d.total, // beyond the last fragment
		!f.more && d.total >= 0 && int(end) != d.total, // a second, different end
		!f.more && held > end:                          // an end before bytes held
		return Overlap
	case off == end: // an empty last fragment: it only marks the end
		if d.total >= 0 {
			return Duplicate
		}
	default:
		i, _ := slices.BinarySearchFunc(d.spans, off, func(s span, off uint32) int { return int(s.off) - int(off) })
		// Only the neighbours can overlap: the spans are sorted, disjoint
		// and not empty.
		for _, j := range []int{i - 1, i} {
			if j < 0 || j >= len(d.spans) {
				continue
			}
			if s := d.spans[j]; s.off < end && off < s.end {
				if s.off <= off && end <= s.end {
					return Duplicate
				}
				return Overlap
			}
		}
		d.spans = slices.Insert(d.spans, i, span{off, end})
		if int(end) > len(d.data) {
			d.data = slices.Grow(d.data, int(end)-len(d.data))[:end]
		}
		copy(d.data[off:end], f.payload)
		d.have += int(end - off)
	}
	d.count++
	if !f.more {
		d.total = int(end)
	}
	if off == 0 {
		d.header = append(d.header[:0], f.header...)
		d.next, d.nextHdr = f.next, f.nextHdr
	}
	return NumEvictions
}

// complete builds d's datagram into r.out and forgets d.
func (r *Reassembler) complete(d *datagram) ([]byte, Outcome) {
	n := uint64(d.count)
	out := append(append(r.out[:0], d.header...), d.data...)
	if d.key.v6 {
		out[d.next] = d.nextHdr
		binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
	} else {
		binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
		out[6], out[7] = 0, 0 // no more fragments, offset 0
		out[10], out[11] = 0, 0
		binary.BigEndian.PutUint16(out[10:12], checksum(out[:len(d.header)]))
	}
	r.out = out
	r.forget(d)
	r.stats.Held -= n
	r.stats.Absorbed += n - 1
	r.stats.Completing++
	return out, Complete
}

// drop evicts d (nil is nothing) and counts its fragments under why.
func (r *Reassembler) drop(d *datagram, why Eviction) {
	if d == nil {
		return
	}
	n := uint64(d.count)
	r.forget(d)
	r.stats.Held -= n
	r.stats.Evicted[why] += n
}

// forget takes d out of the map, the list and the budget.
func (r *Reassembler) forget(d *datagram) {
	delete(r.pending, d.key)
	if d.older != nil {
		d.older.newer = d.newer
	} else {
		r.oldest = d.newer
	}
	if d.newer != nil {
		d.newer.older = d.older
	} else {
		r.newest = d.older
	}
	r.stats.Bytes -= uint64(d.cost)
	r.stats.Datagrams--
}

// Expire drops the datagrams whose first fragment came more than Timeout
// before now, oldest first. Add calls it; a caller calls it too when
// packets other than fragments move the clock on.
func (r *Reassembler) Expire(now time.Time) {
	t := now.UnixNano()
	for d := r.oldest; d != nil && t-d.start > int64(r.cfg.Timeout); d = r.oldest {
		r.drop(d, Timeout)
	}
}

// Flush drops every datagram in progress as Incomplete: the input ended.
func (r *Reassembler) Flush() {
	for r.oldest != nil {
		r.drop(r.oldest, Incomplete)
	}
}

// parse takes the fragment apart; false when it is not a usable one.
func parse(ip []byte, f *fragment) bool {
	if len(ip) == 0 {
		return false
	}
	switch ip[0] >> 4 {
	case 4:
		return parse4(ip, f)
	case 6:
		return parse6(ip, f)
	}
	return false
}

func parse4(ip []byte, f *fragment) bool {
	if len(ip) < 20 {
		return false
	}
	ihl := int(ip[0]&0x0F) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || tot < ihl || tot > len(ip) { // a bad header, or cut short
		return false
	}
	copy(f.key.src[:], ip[12:16])
	copy(f.key.dst[:], ip[16:20])
	f.key.id = uint32(binary.BigEndian.Uint16(ip[4:6]))
	f.key.proto = ip[9]
	fo := binary.BigEndian.Uint16(ip[6:8])
	f.off, f.more = int(fo&0x1FFF)*8, fo&0x2000 != 0
	f.header, f.payload = ip[:ihl], ip[ihl:tot] // tot cuts Ethernet padding
	return true
}

func parse6(ip []byte, f *fragment) bool {
	if len(ip) < 40 {
		return false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen == 0 || 40+plen > len(ip) { // a jumbogram, or cut short
		return false
	}
	b := ip[:40+plen]
	copy(f.key.src[:], b[8:24])
	copy(f.key.dst[:], b[24:40])
	f.key.v6 = true
	next, at, off := b[6], 6, 40
	for off+8 <= len(b) {
		var hlen int
		switch {
		case decap.IPv6Extension(next):
			hlen = decap.IPv6ExtensionLen(next, b[off:])
		case next == 44: // the fragment header
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			f.nextHdr, f.next = b[off], at
			f.off, f.more = int(fo&^7), fo&1 != 0
			f.key.id = binary.BigEndian.Uint32(b[off+4 : off+8])
			f.header, f.payload = b[:off], b[off+8:]
			return true
		default:
			return false
		}
		next, at = b[off], off
		off += hlen
	}
	return false
}

// checksum is the IPv4 header checksum of h (whose checksum field is 0).
func checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xFFFF {
		sum = sum>>16 + sum&0xFFFF
	}
	return ^uint16(sum)
}
