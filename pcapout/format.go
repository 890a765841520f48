package pcapout

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Format is a capture file format.
type Format uint8

// The formats.
const (
	// FormatPcap is nanosecond pcap: one link type, no interfaces.
	FormatPcap Format = iota
	// FormatPcapng has an interface per source and statistics.
	FormatPcapng
)

// String returns the format's name, as ParseFormat takes it.
func (f Format) String() string {
	if f == FormatPcapng {
		return "pcapng"
	}
	return "pcap"
}

// ParseFormat parses "pcap" or "pcapng".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "pcap":
		return FormatPcap, nil
	case "pcapng":
		return FormatPcapng, nil
	}
	return 0, fmt.Errorf("invalid format %q: want pcap or pcapng", s)
}

// Interface is one source of packets: a pcapng interface description.
type Interface struct {
	Name, Description string
	// Capture is the id of the dpcap capture whose copies the source
	// carries (the port map's). pcapng writes it at the end of the
	// description, "...; dpcap capture ID", which capinfos and tshark
	// (frame.interface_description) show and CaptureOf reads back.
	Capture string
}

// captureNote introduces the capture id in a description.
const captureNote = "dpcap capture "

// description is the interface's description as written, the capture id
// at its end.
func (ifc Interface) description() string {
	switch {
	case ifc.Capture == "":
		return ifc.Description
	case ifc.Description == "":
		return captureNote + ifc.Capture
	}
	return ifc.Description + "; " + captureNote + ifc.Capture
}

// CaptureOf returns the capture id a pcapng interface's description ends
// with ("" for none).
func CaptureOf(description string) string {
	i := strings.LastIndex(description, captureNote)
	if i < 0 || i > 0 && !strings.HasSuffix(description[:i], "; ") {
		return ""
	}
	id := description[i+len(captureNote):]
	if id == "" || strings.ContainsAny(id, " ;") {
		return ""
	}
	return id
}

// ifaceStats are the counts written in a pcapng interface statistics
// block when a file closes.
type ifaceStats struct {
	Received uint64 // envelopes received from the source since the start
	Filtered uint64 // of those, rejected by the filter
	// OSDropped is the kernel's drop count of the socket or ring, which
	// all sources share; it is written on interface 0 only.
	OSDropped uint64
	Delivered uint64 // packets in this file
}

// encoder writes one format into an output.
type encoder interface {
	header(o *output, ifaces []Interface)
	addInterface(o *output, ifc Interface)
	packet(o *output, iface int, ts time.Time, data []byte, length int)
	trailer(o *output, stats []ifaceStats, start, end time.Time)
	// recordLen is the bytes a packet of n captured bytes takes in a file;
	// trailerLen, the bytes trailer adds for ifaces interfaces.
	recordLen(n int) int
	trailerLen(ifaces int) int
}

// pcapEncoder writes nanosecond pcap.
type pcapEncoder struct {
	snapLen  uint32
	linkType layers.LinkType
}

func (e *pcapEncoder) header(o *output, _ []Interface) {
	_ = pcapgo.NewWriterNanos(o).WriteFileHeader(e.snapLen, e.linkType) // an output buffers; it cannot fail
}

func (e *pcapEncoder) addInterface(*output, Interface) {}

// packet appends a record as pcapgo's Writer writes it (a zero time is the
// time of writing), in one append, without copying a CaptureInfo per
// packet.
func (e *pcapEncoder) packet(o *output, _ int, ts time.Time, data []byte, length int) {
	if ts.IsZero() {
		ts = time.Now()
	}
	b := le.AppendUint32(o.buf, uint32(ts.Unix()))
	b = le.AppendUint32(b, uint32(ts.Nanosecond()))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(length))
	o.buf = append(b, data...)
}

func (e *pcapEncoder) trailer(*output, []ifaceStats, time.Time, time.Time) {}

// recordLen: a 16-byte record header.
func (e *pcapEncoder) recordLen(n int) int { return pcapfile.RecordHeaderLen + n }

func (e *pcapEncoder) trailerLen(int) int { return 0 }

// pcapngEncoder writes pcapng (little-endian, nanosecond timestamps).
type pcapngEncoder struct {
	// snapLen and linkType are the next interface's.
	snapLen  uint32
	linkType layers.LinkType
	// app, hardware and os describe the section ("" leaves hardware and
	// os out).
	app, hardware, os string
	ifaces            int
	// isbLen0 and isbLen are the sizes of interface 0's statistics block
	// and of any other's.
	isbLen0, isbLen int
}

// The pcapng block types and option codes used.
const (
	ngSHB = pcapfile.BlockSectionHeader
	ngIDB = pcapfile.BlockInterface
	ngISB = pcapfile.BlockInterfaceStats
	ngEPB = pcapfile.BlockEnhancedPacket

	optEnd        = 0
	optComment    = 1
	shbHardware   = 2
	shbOS         = 3
	shbUserAppl   = 4
	ifName        = 2
	ifDescription = 3
	ifTsresol     = 9
	isbStart      = 2
	isbEnd        = 3
	isbIfRecv     = 4
	isbIfDrop     = 5
	isbFilterOK   = 6
	isbOSDrop     = 7
	isbUsrDeliv   = 8
)

var (
	le    = binary.LittleEndian
	zeros [4]byte
)

// block appends a block of type typ with body (already padded) to o.
func block(o *output, typ uint32, body []byte) {
	n := uint32(12 + len(body))
	o.buf = le.AppendUint32(o.buf, typ)
	o.buf = le.AppendUint32(o.buf, n)
	o.buf = append(o.buf, body...)
	o.buf = le.AppendUint32(o.buf, n)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// opt appends an option. A value longer than an option can say (65,535
// bytes) is cut, on a UTF-8 boundary, rather than wrapping the length and
// corrupting the file.
func opt(b []byte, code uint16, v []byte) []byte {
	if len(v) > math.MaxUint16 {
		n := math.MaxUint16
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	return pad4(append(b, v...))
}

func optU64(b []byte, code uint16, v uint64) []byte {
	return opt(b, code, le.AppendUint64(nil, v))
}

func optTime(b []byte, code uint16, t time.Time) []byte {
	ns := uint64(t.UnixNano())
	return opt(b, code, le.AppendUint32(le.AppendUint32(nil, uint32(ns>>32)), uint32(ns)))
}

// sectionHeader is a section header block's body before its options:
// version 1.0, length unknown.
func sectionHeader() []byte {
	b := le.AppendUint32(nil, pcapfile.ByteOrderMagic)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	return le.AppendUint64(b, ^uint64(0))
}

func (e *pcapngEncoder) header(o *output, ifaces []Interface) {
	b := opt(sectionHeader(), shbUserAppl, []byte(e.app))
	if e.hardware != "" {
		b = opt(b, shbHardware, []byte(e.hardware))
	}
	if e.os != "" {
		b = opt(b, shbOS, []byte(e.os))
	}
	b = opt(b, optEnd, nil)
	block(o, ngSHB, b)
	e.ifaces = 0
	for _, ifc := range ifaces {
		e.addInterface(o, ifc)
	}
}

func (e *pcapngEncoder) addInterface(o *output, ifc Interface) {
	b := le.AppendUint16(nil, uint16(e.linkType))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, e.snapLen)
	if ifc.Name != "" {
		b = opt(b, ifName, []byte(ifc.Name))
	}
	if d := ifc.description(); d != "" {
		b = opt(b, ifDescription, []byte(d))
	}
	b = opt(b, ifTsresol, []byte{9})
	b = opt(b, optEnd, nil)
	block(o, ngIDB, b)
	e.ifaces++
}

// packet appends an enhanced packet block without allocating.
func (e *pcapngEncoder) packet(o *output, iface int, ts time.Time, data []byte, length int) {
	padded := (len(data) + 3) &^ 3
	n := uint32(32 + padded)
	ns := uint64(ts.UnixNano())
	b := o.buf
	b = le.AppendUint32(b, ngEPB)
	b = le.AppendUint32(b, n)
	b = le.AppendUint32(b, uint32(iface))
	b = le.AppendUint32(b, uint32(ns>>32))
	b = le.AppendUint32(b, uint32(ns))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(length))
	b = append(b, data...)
	b = append(b, zeros[:padded-len(data)]...)
	o.buf = le.AppendUint32(b, n)
}

// recordLen: an enhanced packet block, 32 bytes around the padded data.
func (e *pcapngEncoder) recordLen(n int) int { return 32 + (n+3)&^3 }

// trailerLen: a statistics block per interface, interface 0's the larger.
func (e *pcapngEncoder) trailerLen(ifaces int) int {
	if ifaces == 0 {
		return 0
	}
	if e.isbLen == 0 {
		o := &output{}
		e.isb(o, 0, ifaceStats{}, time.Time{}, time.Time{})
		e.isbLen0 = len(o.buf)
		o.buf = o.buf[:0]
		e.isb(o, 1, ifaceStats{}, time.Time{}, time.Time{})
		e.isbLen = len(o.buf)
	}
	return e.isbLen0 + (ifaces-1)*e.isbLen
}

func (e *pcapngEncoder) trailer(o *output, stats []ifaceStats, start, end time.Time) {
	for i := 0; i < e.ifaces; i++ {
		var s ifaceStats
		if i < len(stats) {
			s = stats[i]
		}
		e.isb(o, i, s, start, end)
	}
}

// isbHead is the start of interface i's statistics block, up to its
// counts: the interface, the time and the time span.
func isbHead(i int, start, end time.Time) []byte {
	ns := uint64(end.UnixNano())
	b := le.AppendUint32(nil, uint32(i))
	b = le.AppendUint32(b, uint32(ns>>32))
	b = le.AppendUint32(b, uint32(ns))
	b = optTime(b, isbStart, start)
	return optTime(b, isbEnd, end)
}

// isb appends interface i's statistics block.
func (e *pcapngEncoder) isb(o *output, i int, s ifaceStats, start, end time.Time) {
	b := isbHead(i, start, end)
	b = optU64(b, isbIfRecv, s.Received)
	b = optU64(b, isbFilterOK, s.Received-s.Filtered)
	if i == 0 {
		b = optU64(b, isbOSDrop, s.OSDropped)
		b = opt(b, optComment, []byte("osdrop counts the kernel's drops on sinkd's socket, for all interfaces"))
	}
	b = optU64(b, isbUsrDeliv, s.Delivered)
	b = opt(b, optEnd, nil)
	block(o, ngISB, b)
}
