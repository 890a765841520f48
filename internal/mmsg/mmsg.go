//go:build linux

// Package mmsg batches datagram socket I/O with recvmmsg(2) and sendmmsg(2).
//
// A Batch owns every buffer and kernel header it hands to the kernel, so
// receiving or sending a batch allocates nothing. x/net's ipv6.PacketConn
// offers the same calls but allocates per message, which the sink's hot path
// cannot afford.
package mmsg

import (
	"encoding/binary"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux's IPv6 flow label options (linux/in6.h), which x/sys lacks.
const (
	// IPv6FlowInfo asks for each datagram's flow label as a control message.
	IPv6FlowInfo = 11
	// IPv6FlowLabelMgr leases a flow label for sending.
	IPv6FlowLabelMgr = 32
	// IPv6FlowInfoSend sends the flow label given in the destination address.
	IPv6FlowInfoSend = 33
)

// Batch is a set of message slots for one recvmmsg or sendmmsg call.
type Batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	bufs  [][]byte
	oobN  int
	n     int // slots filled by the last call
}

// oobPerMsg holds an SCM_TIMESTAMPNS control message (a timespec), an
// IPV6_FLOWINFO one (4 bytes) and an IPV6_PKTINFO or IP_PKTINFO one.
var oobPerMsg = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(4) +
	unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// NewBatch returns a batch of n slots, each with a buffer of bufSize bytes.
func NewBatch(n, bufSize int) *Batch {
	b := &Batch{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		oob:   make([]byte, n*oobPerMsg),
		bufs:  make([][]byte, n),
		oobN:  oobPerMsg,
	}
	backing := make([]byte, n*bufSize)
	for i := range b.bufs {
		b.bufs[i] = backing[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	return b
}

// Len returns the number of slots.
func (b *Batch) Len() int { return len(b.hdrs) }

// Buf returns slot i's whole buffer, for a sender to fill.
func (b *Batch) Buf(i int) []byte { return b.bufs[i] }

// Received returns slot i after a Recv: the bytes that fit in the buffer and
// the datagram's full length (larger when the buffer truncated it).
func (b *Batch) Received(i int) (data []byte, length int) {
	length = int(b.hdrs[i].Len)
	n := min(length, len(b.bufs[i]))
	return b.bufs[i][:n], length
}

// Source returns the sender of slot i after a Recv. IPv4-mapped addresses of
// a dual-stack socket are unmapped.
func (b *Batch) Source(i int) netip.AddrPort {
	sa := &b.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPort{}
}

// Timestamp returns the kernel receive time of slot i (SO_TIMESTAMPNS), or
// the zero time when the kernel attached none.
func (b *Batch) Timestamp(i int) time.Time {
	data := b.cmsg(i, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS)
	if len(data) < int(unsafe.Sizeof(unix.Timespec{})) {
		return time.Time{}
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
	return time.Unix(ts.Sec, ts.Nsec)
}

// FlowLabel returns the IPv6 flow label of slot i (IPV6_FLOWINFO), or 0.
func (b *Batch) FlowLabel(i int) uint32 {
	data := b.cmsg(i, unix.IPPROTO_IPV6, IPv6FlowInfo)
	if len(data) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(data) & 0xFFFFF
}

// IfIndex returns the interface slot i arrived on (IPV6_RECVPKTINFO or
// IP_PKTINFO), or 0 when the socket was not asked for it.
func (b *Batch) IfIndex(i int) int {
	if data := b.cmsg(i, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); len(data) >= unix.SizeofInet6Pktinfo {
		return int((*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
	}
	if data := b.cmsg(i, unix.IPPROTO_IP, unix.IP_PKTINFO); len(data) >= unix.SizeofInet4Pktinfo {
		return int((*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
	}
	return 0
}

// cmsg returns the data of slot i's control message of level and typ.
func (b *Batch) cmsg(i int, level, typ int32) []byte {
	h := &b.hdrs[i].Hdr
	oob := b.oob[i*b.oobN : i*b.oobN+int(h.Controllen)]
	for len(oob) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if c.Len < unix.SizeofCmsghdr || int(c.Len) > len(oob) {
			return nil
		}
		if c.Level == level && c.Type == typ {
			return oob[unix.CmsgLen(0):c.Len]
		}
		oob = oob[min(unix.CmsgSpace(int(c.Len)-unix.CmsgLen(0)), len(oob)):]
	}
	return nil
}

// Recv fills up to max slots from fd with one recvmmsg call. flags are
// added to MSG_TRUNC; with MSG_WAITFORONE on a blocking socket, the call
// waits for one datagram and then takes what else is queued. It returns
// unix.EAGAIN when nothing arrived in time.
func (b *Batch) Recv(fd uintptr, max, flags int) (int, error) {
	max = min(max, len(b.hdrs))
	for i := 0; i < max; i++ {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		h.Control = &b.oob[i*b.oobN]
		h.SetControllen(b.oobN)
		h.Flags = 0
	}
	// MSG_TRUNC makes the kernel report each datagram's real length even
	// when the buffer was shorter, so snaplen truncation keeps the length.
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(max), uintptr(unix.MSG_TRUNC|flags), 0, 0)
	if errno != 0 {
		b.n = 0
		return 0, errno
	}
	b.n = int(n)
	return b.n, nil
}

// SetSend prepares slot i to send the first n bytes of its buffer to dst,
// or on a connected socket when dst is nil.
func (b *Batch) SetSend(i, n int, dst *unix.RawSockaddrInet6) {
	b.iovs[i].Base = &b.bufs[i][0]
	b.iovs[i].SetLen(n)
	h := &b.hdrs[i].Hdr
	h.Name, h.Namelen = nil, 0
	if dst != nil {
		h.Name = (*byte)(unsafe.Pointer(dst))
		h.Namelen = unix.SizeofSockaddrInet6
		if dst.Family == unix.AF_INET {
			h.Namelen = unix.SizeofSockaddrInet4
		}
	}
	h.Iov = &b.iovs[i]
	h.Iovlen = 1
	h.Control = nil
	h.SetControllen(0)
}

// Send transmits slots [from, to) with one sendmmsg call on a non-blocking
// socket and returns how many were sent.
func (b *Batch) Send(fd uintptr, from, to int) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[from])),
		uintptr(to-from), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Temporary reports whether err means "try again when the socket is ready".
func Temporary(err error) bool {
	return err == unix.EAGAIN || err == unix.EWOULDBLOCK || err == unix.EINTR
}

// Sockaddr encodes ap for SetSend. An IPv4 destination is encoded as
// AF_INET unless v6Socket is set, in which case it is IPv4-mapped (as a
// dual-stack AF_INET6 socket requires).
func Sockaddr(ap netip.AddrPort, v6Socket bool) unix.RawSockaddrInet6 {
	var sa unix.RawSockaddrInet6
	addr := ap.Addr()
	if addr.Is4() && !v6Socket {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = addr.As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		return sa
	}
	sa.Family = unix.AF_INET6
	sa.Addr = addr.As16()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	return sa
}
