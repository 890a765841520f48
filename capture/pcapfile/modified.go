package pcapfile

import (
	"encoding/binary"
	"io"
)

// modifiedPcap reads a modified pcap stream as a classic one, in the
// file's byte order with microsecond timestamps, as libpcap does: the
// file header with the classic magic number, each record's header without
// the fields that follow the lengths. Cut short, it passes what it has:
// the reader says where the file ends.
type modifiedPcap struct {
	r     io.Reader
	order binary.ByteOrder
	head  [modifiedRecordHeaderLen]byte
	out   []byte // what of head is still to pass
	left  int64  // record data still to pass from r
	begun bool   // the file header has passed
}

func (m *modifiedPcap) Read(p []byte) (int, error) {
	for {
		if len(m.out) > 0 {
			n := copy(p, m.out)
			m.out = m.out[n:]
			return n, nil
		}
		if m.left > 0 {
			n, err := m.r.Read(p[:min(int64(len(p)), m.left)])
			m.left -= int64(n)
			return n, err
		}
		size := modifiedRecordHeaderLen
		if !m.begun {
			size = FileHeaderLen
		}
		n, err := io.ReadFull(m.r, m.head[:size])
		switch {
		case err == io.ErrUnexpectedEOF:
			m.out = m.head[:n]
			m.left = 1 << 62 // whatever r still gives: nothing
			continue
		case err != nil:
			return 0, err
		case !m.begun:
			m.begun = true
			m.order.PutUint32(m.head[0:4], MagicMicro)
			m.out = m.head[:FileHeaderLen]
		default:
			m.out = m.head[:RecordHeaderLen]
			m.left = int64(m.order.Uint32(m.head[8:12]))
		}
	}
}
