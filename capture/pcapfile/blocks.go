package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/gopacket/gopacket/layers"
)

const (
	// blockSize is how much of a pcap file one read takes: large reads,
	// few system calls, packets handed out where they lie. Not larger:
	// a block the size of the CPU's cache is still there when its records
	// are parsed (8 MiB doubled the user time here).
	blockSize = 1 << 20
	// maxRecord bounds one record's captured length; larger means a
	// corrupt file.
	maxRecord = capture.MaxSnapLen
)

// blockReader reads a classic pcap file in large blocks and hands out the
// packets in place: no copy per packet. A batch stays valid until the
// next one is read, when the unread tail moves to the front.
type blockReader struct {
	r          io.Reader
	buf        []byte
	start, end int  // the unread bytes are buf[start:end]
	big        bool // the file is big-endian
	nano       bool
	link       layers.LinkType
	eof        bool
	records    int   // records handed out
	offset     int64 // the file offset of buf[start]
}

// newBlockReader reads the file header; ok is false when r does not hold
// a classic pcap file (nothing is consumed from head then: it is the
// peeked start of the stream).
func newBlockReader(r io.Reader, head []byte) (*blockReader, bool, error) {
	if len(head) < 4 {
		return nil, false, nil
	}
	b := &blockReader{r: r}
	format, order := Sniff(head)
	if format != FormatPcapMicro && format != FormatPcapNano {
		return nil, false, nil
	}
	b.big, b.nano = order == binary.BigEndian, format == FormatPcapNano
	b.buf = make([]byte, blockSize)
	if err := b.fill(); err != nil && !errors.Is(err, io.EOF) {
		return nil, true, err
	}
	if b.end-b.start < FileHeaderLen {
		return nil, true, fmt.Errorf("read pcap file header: %w", io.ErrUnexpectedEOF)
	}
	h := b.buf[b.start : b.start+FileHeaderLen]
	if major := b.u16(h[4:6]); major != 2 {
		return nil, true, fmt.Errorf("read pcap file header: unknown version %d", major)
	}
	// The link type's low 16 bits; the upper ones carry FCS flags.
	b.link = layers.LinkType(b.u32(h[20:24]) & 0xffff)
	b.start += FileHeaderLen
	b.offset = FileHeaderLen
	return b, true, nil
}

// fill moves the unread bytes to the front and reads until the buffer is
// full or the stream ends.
func (b *blockReader) fill() error {
	if b.start > 0 {
		b.end = copy(b.buf, b.buf[b.start:b.end])
		b.start = 0
	}
	for b.end < len(b.buf) && !b.eof {
		n, err := b.r.Read(b.buf[b.end:])
		b.end += n
		if errors.Is(err, io.EOF) {
			b.eof = true
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrNoProgress
		}
	}
	return nil
}

// read fills pkts with the records in the buffer, refilling it when it
// holds no complete record. It returns io.EOF at the end of the file.
func (b *blockReader) read(pkts []capture.Packet) (int, error) {
	n := 0
	for n < len(pkts) {
		avail := b.buf[b.start:b.end]
		if len(avail) == 0 && b.eof {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		if len(avail) < RecordHeaderLen {
			if b.eof {
				return n, b.recordError(fmt.Errorf("record header: %w", io.ErrUnexpectedEOF))
			}
			if n > 0 {
				break
			}
			if err := b.fill(); err != nil {
				return 0, err
			}
			continue
		}
		incl := int(b.u32(avail[8:12]))
		if incl > maxRecord {
			return n, b.recordError(fmt.Errorf("captured length %d > %d, the largest snap length", incl, maxRecord))
		}
		if len(avail) < RecordHeaderLen+incl {
			if b.eof {
				return n, b.recordError(fmt.Errorf("%d-byte record: %w", incl, io.ErrUnexpectedEOF))
			}
			if n > 0 {
				break // the batch points into the buffer: refill next time
			}
			if b.start == 0 {
				// One record larger than the whole buffer.
				b.buf = append(b.buf, make([]byte, RecordHeaderLen+incl)...)
			}
			if err := b.fill(); err != nil {
				return 0, err
			}
			continue
		}
		sub := int64(b.u32(avail[4:8]))
		if !b.nano {
			sub *= 1000
		}
		data := avail[RecordHeaderLen : RecordHeaderLen+incl : RecordHeaderLen+incl]
		pkts[n] = capture.Packet{
			Data:      data,
			Length:    int(b.u32(avail[12:16])),
			Timestamp: time.Unix(int64(b.u32(avail[0:4])), sub),
			LinkType:  b.link,
		}
		b.start += RecordHeaderLen + incl
		b.offset += int64(RecordHeaderLen + incl)
		b.records++
		n++
	}
	return n, nil
}

// u32 and u16 read a field in the file's byte order. A flag, not a
// binary.ByteOrder: a call through the interface for each field of each
// record cost sinkd -r 5% of its time.
func (b *blockReader) u32(p []byte) uint32 {
	if b.big {
		return binary.BigEndian.Uint32(p)
	}
	return binary.LittleEndian.Uint32(p)
}

func (b *blockReader) u16(p []byte) uint16 {
	if b.big {
		return binary.BigEndian.Uint16(p)
	}
	return binary.LittleEndian.Uint16(p)
}

// recordError says where the record being read fails: its number in the
// file, from 1 as Wireshark counts frames, and its offset.
func (b *blockReader) recordError(err error) error {
	return &RecordError{Packet: b.records + 1, Offset: b.offset, Err: err}
}
