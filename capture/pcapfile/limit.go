package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"math/bits"
	"slices"
)

// MaxInterfaces bounds the interfaces one pcapng section may describe:
// the reader keeps each one's state, so a small compressed file of a
// million descriptions would take gigabytes.
const MaxInterfaces = 1 << 16

// maxKeptBytes bounds the blocks of a section the reader keeps for the
// whole section: interface descriptions (their options' strings), name
// resolution and decryption secrets. A gzip file of a megabyte can hold
// far more.
const maxKeptBytes = 16 << 20

// maxBlock bounds every block, as libpcap bounds them (16 MiB): ngLimit
// holds an interface description whole to read its options, and pcapgo
// reads a packet block whole, taking several times its length in memory.
const maxBlock = 16 << 20

// The pcapng details ngLimit reads.
const (
	blockPacket       uint32 = 2 // obsolete, with a 16-bit interface id
	optTsresol        uint16 = 9 // if_tsresol
	optStartTime      uint16 = 2 // isb_starttime
	optEndTime        uint16 = 3 // isb_endtime
	versionMajor             = 1
	tsresolBinary            = 0x80 // if_tsresol's flag: a negative power of 2
	tsresolNanosecond        = 9
)

// ngLimit passes a pcapng stream through block by block, for pcapgo to
// parse. It ends the stream with an error before a section's kept blocks
// exceed the bounds (the reader never parses them) and at a section of an
// unknown major version, as libpcap does. It rewrites what pcapgo would
// read wrong: a section's minor version (pcapgo skips any section but
// 1.0; libpcap reads every 1.x), and a power-of-two timestamp resolution,
// which pcapgo multiplies instead of scaling: the interface's if_tsresol
// becomes nanoseconds and each packet's and statistics' timestamp is
// scaled to them, rounded down as Wireshark does.
type ngLimit struct {
	r     io.Reader
	order binary.ByteOrder
	held  []byte // the current block's head, rewritten
	out   []byte // what of held is still to pass
	left  int64  // bytes of the current block still to pass from r
	ifs   []int  // the section's interfaces: if_tsresol's power of 2, or -1
	kept  int64  // bytes of kept blocks of the section
	off   int64  // offset of the next block
	err   error
	stop  bool // a header the reader refuses: follow no further
}

// keptTooMuch is the error of a section whose kept blocks pass
// maxKeptBytes at the block at off.
func (l *ngLimit) keptTooMuch(off int64) error {
	return fmt.Errorf("block at byte %d: more than %d MiB of interface descriptions, name and secrets blocks in a section: not read further", off, maxKeptBytes>>20)
}

func (l *ngLimit) Read(p []byte) (int, error) {
	for {
		if len(l.out) > 0 {
			n := copy(p, l.out)
			l.out = l.out[n:]
			return n, nil
		}
		if l.stop || l.left > 0 {
			if !l.stop && int64(len(p)) > l.left {
				p = p[:l.left]
			}
			n, err := l.r.Read(p)
			l.left -= int64(n)
			return n, err
		}
		if l.err != nil {
			return 0, l.err
		}
		l.err = l.next()
	}
}

// next reads the next block's head into held: the whole block for an
// interface description or statistics, the fields up to the timestamp
// for a packet, the header (and a section's version) for any other.
func (l *ngLimit) next() error {
	off := l.off
	l.held = l.held[:0]
	h, err := l.readHead(8)
	if h == nil {
		return err
	}
	if binary.LittleEndian.Uint32(h[:4]) == BlockSectionHeader {
		if h, err = l.readHead(12); h == nil {
			return err
		}
		if l.order = SectionByteOrder(h[8:12]); l.order == nil || l.order.Uint32(h[4:8]) < 28 {
			return l.pass()
		}
		if h, err = l.readHead(16); h == nil {
			return err
		}
		l.ifs, l.kept = l.ifs[:0], 0
	}
	if l.order == nil {
		return l.pass()
	}
	typ, length := l.order.Uint32(h[:4]), int64(l.order.Uint32(h[4:8]))
	if length < 12 || length%4 != 0 {
		return l.pass() // the reader says what is wrong
	}
	if length > maxBlock {
		return fmt.Errorf("block at byte %d: %d bytes, more than %d MiB: not read further", off, length, maxBlock>>20)
	}
	switch typ {
	case BlockSectionHeader:
		major, minor := l.order.Uint16(h[12:14]), l.order.Uint16(h[14:16])
		if major != versionMajor {
			// A new major version may frame its blocks anew: no next
			// section can be found with certainty.
			return fmt.Errorf("section at byte %d: pcapng version %d.%d, unknown: not read further", off, major, minor)
		}
		l.order.PutUint16(h[14:16], 0)
	case BlockInterface:
		if len(l.ifs) >= MaxInterfaces {
			return fmt.Errorf("block at byte %d: more than %d interfaces in a section: not read further", off, MaxInterfaces)
		}
		if l.kept += length; l.kept > maxKeptBytes {
			return l.keptTooMuch(off)
		}
		if h, err = l.readHead(int(length)); h == nil {
			return err
		}
		l.ifs = append(l.ifs, l.tsresol(h))
	case BlockEnhancedPacket, blockPacket:
		if length < 32 {
			return l.pass()
		}
		if h, err = l.readHead(20); h == nil {
			return err
		}
		id := int(l.order.Uint32(h[8:12]))
		if typ == blockPacket {
			id = int(l.order.Uint16(h[8:10]))
		}
		if err := l.toNanos(h[12:20], id, off); err != nil {
			return err
		}
	case BlockInterfaceStats:
		// Its time and isb_starttime and isb_endtime are in the
		// interface's units too.
		if h, err = l.readHead(int(length)); h == nil {
			return err
		}
		id := int(l.order.Uint32(h[8:12]))
		if length < 24 {
			break
		}
		if err := l.toNanos(h[12:20], id, off); err != nil {
			return err
		}
		for code, v := range options(l.order, h, 20) {
			if (code == optStartTime || code == optEndTime) && len(v) == 8 {
				if err := l.toNanos(v, id, off); err != nil {
					return err
				}
			}
		}
	case BlockNames, BlockDecryptSecrets:
		if l.kept += length; l.kept > maxKeptBytes {
			return l.keptTooMuch(off)
		}
	}
	l.left = length - int64(len(h))
	l.off += length
	return nil
}

// readHead reads the current block's first n bytes into held (keeping
// those already there) and queues them to pass. It returns nil at the end
// of the stream (io.EOF between blocks), on a read error, and when the
// stream ends within the n bytes: those read still pass, then the rest
// of the stream, and the reader says the file ends early.
func (l *ngLimit) readHead(n int) ([]byte, error) {
	var err error
	for len(l.held) < n && err == nil {
		// Grown as the bytes come: a short file claiming a large block
		// costs no more than it holds.
		at := len(l.held)
		l.held = slices.Grow(l.held, min(n-at, 64<<10))
		l.held = l.held[:min(n, cap(l.held))]
		var got int
		got, err = io.ReadFull(l.r, l.held[at:])
		l.held = l.held[:at+got]
	}
	l.out = l.held
	switch {
	case err == nil:
		return l.held, nil
	case err == io.EOF && len(l.held) == 0:
		return nil, io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, l.pass()
	}
	return nil, err
}

// pass gives up following the blocks: what is held and the rest of the
// stream pass as they are.
func (l *ngLimit) pass() error {
	l.stop = true
	return nil
}

// tsresol reads an interface description's if_tsresol: the power of 2 of
// its time unit, which it rewrites to nanoseconds, or -1 for a power of
// 10 (pcapgo reads those right). Options that do not parse end the walk:
// the reader says what is wrong.
func (l *ngLimit) tsresol(b []byte) int {
	exp := -1
	for code, v := range options(l.order, b, 16) {
		if code == optTsresol && len(v) >= 1 {
			exp = -1
			if v[0]&tsresolBinary != 0 {
				exp = int(v[0] &^ tsresolBinary)
				v[0] = tsresolNanosecond
			}
		}
	}
	return exp
}

// options yields the options of block b, whose first is at from: each
// code and value (in the block: a change writes it); the end-of-options
// code or an option that does not fit before the trailing length ends
// them.
func options(order binary.ByteOrder, b []byte, from int) iter.Seq2[uint16, []byte] {
	return func(yield func(uint16, []byte) bool) {
		end := len(b) - 4
		for o := from; o+4 <= end; {
			code, n := order.Uint16(b[o:o+2]), int(order.Uint16(b[o+2:o+4]))
			if code == 0 || o+4+n > end || !yield(code, b[o+4:o+4+n]) {
				return
			}
			o += 4 + (n+3)&^3
		}
	}
}

// toNanos rewrites a timestamp (high and low 32 bits) of interface id,
// in a block at off, from the interface's power-of-two units to
// nanoseconds; one of another interface it leaves alone.
func (l *ngLimit) toNanos(b []byte, id int, off int64) error {
	if id >= len(l.ifs) || l.ifs[id] < 0 {
		return nil
	}
	ts := uint64(l.order.Uint32(b[0:4]))<<32 | uint64(l.order.Uint32(b[4:8]))
	ns, ok := binaryToNanos(ts, uint(l.ifs[id]))
	if !ok {
		return fmt.Errorf("block at byte %d: timestamp %d of 2^-%d s is past the year 2554: not read further", off, ts, l.ifs[id])
	}
	l.order.PutUint32(b[0:4], uint32(ns>>32))
	l.order.PutUint32(b[4:8], uint32(ns))
	return nil
}

// binaryToNanos converts ts units of 2^-exp s to nanoseconds, rounded
// down; ok is false when they do not fit in 64 bits (past the year 2554).
func binaryToNanos(ts uint64, exp uint) (ns uint64, ok bool) {
	hi, lo := bits.Mul64(ts, 1e9)
	switch {
	case exp == 0:
		return lo, hi == 0
	case exp < 64:
		return hi<<(64-exp) | lo>>exp, hi>>exp == 0
	default:
		return hi >> (exp - 64), true
	}
}
