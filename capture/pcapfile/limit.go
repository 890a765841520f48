package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxInterfaces bounds the interfaces one pcapng section may describe:
// each costs the reader about a kilobyte, so a small compressed file of
// a million descriptions would take a gigabyte.
const MaxInterfaces = 1 << 16

// maxKeptBytes bounds the name resolution and decryption secrets blocks of
// a section, which the reader keeps too.
const maxKeptBytes = 16 << 20

// ngLimit passes a pcapng stream through, following its block headers,
// and ends it with an error before a section's kept blocks exceed the
// bounds: the reader never parses them.
type ngLimit struct {
	r     io.Reader
	order binary.ByteOrder
	hdr   [12]byte
	nhdr  int   // bytes of the next block's header seen
	left  int64 // bytes of the current block still to pass
	ifs   int   // interfaces of the section
	kept  int64 // bytes of kept blocks of the section
	off   int64 // offset of the current block
	err   error
	stop  bool // a header the reader refuses: follow no further
}

func (l *ngLimit) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if cut := l.scan(p[:n]); cut < n {
		return cut, nil // l.err comes with the next read
	}
	return n, err
}

// scan follows the blocks in b; it returns len(b), or where the block
// that breaks a bound starts.
func (l *ngLimit) scan(b []byte) int {
	for i := 0; i < len(b) && !l.stop; {
		if l.left > 0 {
			step := int64(len(b) - i)
			if step > l.left {
				step = l.left
			}
			l.left -= step
			i += int(step)
			continue
		}
		start := i - l.nhdr // may be before b: the header began in an earlier read
		need := 8
		if l.nhdr >= 4 && binary.LittleEndian.Uint32(l.hdr[:4]) == BlockSectionHeader {
			need = 12 // the byte order mark says how to read the length
		}
		for l.nhdr < need && i < len(b) {
			l.hdr[l.nhdr] = b[i]
			l.nhdr++
			i++
			if l.nhdr == 4 && binary.LittleEndian.Uint32(l.hdr[:4]) == BlockSectionHeader {
				need = 12
			}
		}
		if l.nhdr < need {
			return len(b)
		}
		if need == 12 {
			if l.order = SectionByteOrder(l.hdr[8:12]); l.order == nil {
				l.stop = true
				return len(b)
			}
			l.ifs, l.kept = 0, 0
		}
		if l.order == nil {
			l.stop = true
			return len(b)
		}
		typ, length := l.order.Uint32(l.hdr[:4]), int64(l.order.Uint32(l.hdr[4:8]))
		if length < 12 || length%4 != 0 {
			l.stop = true // the reader says what is wrong
			return len(b)
		}
		switch typ {
		case BlockInterface:
			if l.ifs++; l.ifs > MaxInterfaces {
				l.err = fmt.Errorf("block at byte %d: more than %d interfaces in a section: not read further", l.off, MaxInterfaces)
			}
		case BlockNames, BlockDecryptSecrets:
			if l.kept += length; l.kept > maxKeptBytes {
				l.err = fmt.Errorf("block at byte %d: more than %d MiB of name and secrets blocks in a section: not read further", l.off, maxKeptBytes>>20)
			}
		}
		if l.err != nil {
			return max(start, 0)
		}
		l.off += length
		l.left = length - int64(l.nhdr)
		l.nhdr = 0
	}
	return len(b)
}
