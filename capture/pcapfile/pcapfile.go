// Package pcapfile reads capture files in the formats tcpdump and
// Wireshark read: pcap (micro- or nanosecond, either byte order, and the
// modified pcap of Kuznetzov's patched libpcap) and pcapng, told apart by
// their magic number, each also gzip-compressed.
package pcapfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type packetReader interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// Reader reads packets from a pcap or pcapng stream.
type Reader struct {
	r       packetReader
	ng      *pcapgo.NgReader // set for pcapng, whose interfaces each have a link type
	packets int              // packets read
	offset  int64            // pcap: the file offset of the next record
	recHdr  int              // pcap: the size of a record header
}

// RecordError is a packet record that cannot be read: the file is corrupt
// or cut short there.
type RecordError struct {
	Packet int   // the packet's number in the file, from 1 (Wireshark's frame number)
	Offset int64 // the record's offset in the (decompressed) file; -1 when unknown (pcapng)
	Err    error
}

func (e *RecordError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("packet %d: %v", e.Packet, e.Err)
	}
	return fmt.Sprintf("packet %d at byte %d: %v", e.Packet, e.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// NewReader detects the format of r, gzip-compressed or not, and reads its
// file header.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, err := br.Peek(len(gzipMagic)); err == nil && string(magic) == gzipMagic {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip header: %w", err)
		}
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read file magic: %w", err)
	}
	var in io.Reader = br
	recHdr := RecordHeaderLen
	switch format, order := Sniff(magic); format {
	case FormatPcapng:
		// Without mixed link types, pcapgo would silently drop the packets
		// of interfaces whose link type differs from the first's.
		ng, err := pcapgo.NewNgReader(&ngLimit{r: br}, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("read pcapng section header: %w", err)
		}
		return &Reader{r: ng, ng: ng, offset: -1}, nil
	case FormatPcapModified:
		in, recHdr = &modifiedPcap{r: br, order: order}, modifiedRecordHeaderLen
	}
	p, err := pcapgo.NewReader(in)
	if err != nil {
		return nil, fmt.Errorf("read pcap file header: %w", err)
	}
	return &Reader{r: p, offset: FileHeaderLen, recHdr: recHdr}, nil
}

// LinkType returns the link type of the packets (of the first interface,
// for pcapng).
func (r *Reader) LinkType() layers.LinkType { return r.r.LinkType() }

// Pcapng reports whether the file is pcapng, whose packets each name an
// interface.
func (r *Reader) Pcapng() bool { return r.ng != nil }

// NumInterfaces returns how many pcapng interfaces the file has described
// so far (more may follow among the packets); 0 for pcap.
func (r *Reader) NumInterfaces() int {
	if r.ng == nil {
		return 0
	}
	return r.ng.NInterfaces()
}

// Interface returns pcapng interface i (a packet's
// CaptureInfo.InterfaceIndex): its name, description and link type.
func (r *Reader) Interface(i int) (pcapgo.NgInterface, error) {
	if r.ng == nil {
		return pcapgo.NgInterface{}, errors.New("a pcap file has no interfaces")
	}
	return r.ng.Interface(i)
}

// ReadPacket returns the next packet and its link type; data is valid until
// the next call. It returns io.EOF at the end of the file, and a
// *RecordError for a packet it cannot read.
func (r *Reader) ReadPacket() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	data, ci, err := r.r.ZeroCopyReadPacketData()
	if errors.Is(err, io.EOF) {
		return nil, ci, 0, io.EOF
	}
	if err != nil {
		return nil, ci, 0, &RecordError{Packet: r.packets + 1, Offset: r.offset, Err: err}
	}
	r.packets++
	if r.ng == nil {
		r.offset += int64(r.recHdr + len(data))
		return data, ci, r.r.LinkType(), nil
	}
	if ci.Timestamp.IsZero() {
		// pcapgo's time of a simple packet block, which has none: the
		// Unix epoch, as libpcap gives it and Wireshark writes it (a
		// writer would take the zero time for now).
		ci.Timestamp = time.Unix(0, 0).UTC()
	}
	iface, err := r.ng.Interface(ci.InterfaceIndex)
	if err != nil {
		return nil, ci, 0, &RecordError{Packet: r.packets, Offset: -1, Err: fmt.Errorf("interface %d: %w", ci.InterfaceIndex, err)}
	}
	return data, ci, iface.LinkType, nil
}

// Packet is one packet read by ReadFile.
type Packet struct {
	Data []byte
	Info gopacket.CaptureInfo
}

// ReadFile reads a whole capture file into memory. It fails unless every
// record is complete.
func ReadFile(name string) ([]Packet, layers.LinkType, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", name, err)
	}
	var pkts []Packet
	for {
		data, ci, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return pkts, r.LinkType(), nil
		}
		if err != nil {
			return pkts, r.LinkType(), fmt.Errorf("%s: %w", name, err)
		}
		pkts = append(pkts, Packet{Data: bytes.Clone(data), Info: ci})
	}
}
