//go:build linux

package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	blockSize = 1 << 20
	frameSize = 1 << 16
	// blockTimeout bounds how long a partly filled ring block waits before
	// the kernel hands it over, and so the capture's latency.
	blockTimeout = 5 * time.Millisecond
)

// The TPACKET_V3 layout (linux/if_packet.h): a block starts with a
// tpacket_block_desc whose tpacket_hdr_v1 says who owns it and where its
// packets are; each packet starts with a tpacket3_hdr followed, at
// TPACKET_ALIGN(sizeof(tpacket3_hdr)), by a sockaddr_ll.
const (
	blockStatusOff = 8  // tpacket_block_desc.hdr.bh1.block_status
	numPktsOff     = 12 // .num_pkts
	firstPktOff    = 16 // .offset_to_first_pkt
	nextOff        = 0  // tpacket3_hdr.tp_next_offset
	secOff         = 4  // .tp_sec
	nsecOff        = 8  // .tp_nsec
	snaplenOff     = 12 // .tp_snaplen
	lenOff         = 16 // .tp_len
	macOff         = 24 // .tp_mac
	vlanTCIOff     = 32 // .hv1.tp_vlan_tci
	vlanTPIDOff    = 36 // .hv1.tp_vlan_tpid
	// ifindexOff is sockaddr_ll.sll_ifindex, behind the aligned header.
	ifindexOff = (unix.SizeofTpacket3Hdr+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) + 4
)

// ring is an AF_PACKET socket and its TPACKET_V3 receive ring, owned here
// so that its filter is in place before the socket is bound: a socket
// made with protocol 0 receives nothing until bind names one (as
// mdlayher/packet does), so no frame reaches the ring unfiltered.
type ring struct {
	fd  int
	mem []byte // the mmapped blocks
	n   int    // blocks
	// The block being read, and the offset of its next packet and the
	// packets left in it; left is 0 when no block is held.
	block int
	pkt   int
	left  uint32
}

// newRing opens a socket on the interface ifindex with filter attached,
// a ring of blocks 1 MiB blocks, and then binds it; join, when not nil,
// runs once the socket is bound (PACKET_FANOUT wants a bound socket).
func newRing(ifindex, blocks int, filter []bpf.RawInstruction, join func(fd int) error) (*ring, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open an AF_PACKET socket: %w", err)
	}
	r := &ring{fd: fd, n: blocks}
	fail := func(err error) (*ring, error) {
		r.close()
		return nil, err
	}
	if err := attach(fd, filter); err != nil {
		return fail(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail(fmt.Errorf("set TPACKET_V3 (PACKET_VERSION): %w", err))
	}
	req := unix.TpacketReq3{
		Block_size:     blockSize,
		Block_nr:       uint32(blocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(blocks * (blockSize / frameSize)),
		Retire_blk_tov: uint32(blockTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail(fmt.Errorf("make the ring (PACKET_RX_RING, %d blocks): %w", blocks, err))
	}
	if r.mem, err = unix.Mmap(fd, 0, blocks*blockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("map the ring: %w", err))
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	if join != nil {
		if err := join(fd); err != nil {
			return fail(err)
		}
	}
	return r, nil
}

// attach attaches a classic BPF filter to the socket fd.
func attach(fd int, filter []bpf.RawInstruction) error {
	if len(filter) == 0 || len(filter) > 0xFFFF {
		return fmt.Errorf("kernel filter of %d instructions", len(filter))
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("kernel filter: %w", err)
	}
	return nil
}

// errPoll is a poll of the socket that reported an error condition.
var errPoll = errors.New("poll of the capture socket: error condition (POLLERR)")

// wait waits up to timeout for the next block to be handed over; it
// reports whether it was.
func (r *ring) wait(timeout time.Duration) (bool, error) {
	for !r.ready() {
		fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, fmt.Errorf("poll of the capture socket: %w", err)
		case n == 0:
			return r.ready(), nil
		case fds[0].Revents&unix.POLLERR != 0:
			return false, errPoll
		}
	}
	return true, nil
}

// status is the block's owner word, which the kernel writes last when it
// hands the block over.
func (r *ring) status(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[block*blockSize+blockStatusOff]))
}

// ready reports whether the next block is the reader's.
func (r *ring) ready() bool {
	return atomic.LoadUint32(r.status(r.block))&unix.TP_STATUS_USER != 0
}

// frame is one packet in the ring; its data stay valid until the block is
// released.
type frame struct {
	data     []byte
	length   int
	ts       time.Time
	ifindex  int
	vlanTCI  uint16
	vlanTPID uint16
}

// next returns the next packet of a block handed over, taking the next
// block when the current one is done; ok is false when none is ready.
func (r *ring) next() (f frame, ok bool) {
	for r.left == 0 {
		if !r.ready() {
			return f, false
		}
		b := r.mem[r.block*blockSize : (r.block+1)*blockSize]
		r.left = binary.NativeEndian.Uint32(b[numPktsOff:])
		r.pkt = r.block*blockSize + int(binary.NativeEndian.Uint32(b[firstPktOff:]))
		if r.left == 0 { // retired empty by the block timeout
			r.release()
		}
	}
	h := r.mem[r.pkt:]
	mac := r.pkt + int(binary.NativeEndian.Uint16(h[macOff:]))
	snap := int(binary.NativeEndian.Uint32(h[snaplenOff:]))
	f = frame{
		data:     r.mem[mac : mac+snap : mac+snap],
		length:   int(binary.NativeEndian.Uint32(h[lenOff:])),
		ts:       time.Unix(int64(binary.NativeEndian.Uint32(h[secOff:])), int64(binary.NativeEndian.Uint32(h[nsecOff:]))),
		ifindex:  int(int32(binary.NativeEndian.Uint32(h[ifindexOff:]))),
		vlanTCI:  uint16(binary.NativeEndian.Uint32(h[vlanTCIOff:])),
		vlanTPID: binary.NativeEndian.Uint16(h[vlanTPIDOff:]),
	}
	r.left--
	if r.left > 0 {
		r.pkt += int(binary.NativeEndian.Uint32(h[nextOff:]))
	}
	return f, true
}

// done releases the block once its last packet has been taken (and
// copied): the caller calls it after copying each frame.
func (r *ring) done() {
	if r.left == 0 {
		r.release()
	}
}

// release hands the current block back to the kernel and moves on.
func (r *ring) release() {
	atomic.StoreUint32(r.status(r.block), unix.TP_STATUS_KERNEL)
	r.block = (r.block + 1) % r.n
	r.left = 0
}

// drops returns the packets the kernel dropped since the last call (the
// kernel resets its counts on each read).
func (r *ring) drops() (uint64, error) {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, fmt.Errorf("read the ring's statistics: %w", err)
	}
	return uint64(st.Drops), nil
}

func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	unix.Close(r.fd)
}

// htons puts v in network byte order, as sockaddr_ll's protocol wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
