//go:build linux

package mirror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/internal/encapsock"
	"github.com/dpcap/dpcap/internal/mmsg"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	// drainTime bounds how long Stop sends what the port received before.
	drainTime    = 200 * time.Millisecond
	batchSize    = capture.DefaultBatchSize
	frameBuf     = 65536
	pollInterval = 100 * time.Millisecond
	// packetIgnoreOutgoing is PACKET_IGNORE_OUTGOING (Linux 4.20), which
	// x/sys lacks.
	packetIgnoreOutgoing = 23
)

// packetMirror copies one port's frames through user space: an AF_PACKET
// socket in, a UDP socket out.
type packetMirror struct {
	port     Port
	fd       int
	conn     *net.UDPConn
	raw      syscall.RawConn
	batch    *mmsg.Batch
	sendFn   func(fd uintptr)
	n, pos   int // frames in the batch, and the next to send
	ok       int // frames sent
	stop     atomic.Bool
	done     chan struct{}
	mirrored atomic.Uint64
	failed   atomic.Uint64
	statsMu  sync.Mutex
	dropped  uint64
}

func startPacket(ctx context.Context, port Port, cfg Config) (*packetMirror, error) {
	ifi, err := net.InterfaceByName(port.Interface)
	if err != nil {
		return nil, fmt.Errorf("port %s: interface %s: %w", port.Name, port.Interface, err)
	}
	conn, err := encapsock.Dial(ctx, encapsock.Config{Sink: cfg.Sink, SrcPort: cfg.SrcPort, Tag: port.Tag})
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", port.Name, err)
	}
	fd, err := openCapture(ifi.Index, cfg.Filter)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port %s: capture on %s: %w", port.Name, port.Interface, err)
	}
	m := &packetMirror{port: port, fd: fd, conn: conn, batch: mmsg.NewBatch(batchSize, frameBuf), done: make(chan struct{})}
	if m.raw, err = conn.SyscallConn(); err != nil {
		m.close()
		return nil, err
	}
	m.sendFn = m.send
	go m.run()
	return m, nil
}

// openCapture opens a raw socket that sees the frames ifindex receives.
func openCapture(ifindex int, filter []bpf.RawInstruction) (int, error) {
	// Protocol 0 receives nothing until bind names the interface, so no
	// frame of another interface slips in.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, packetIgnoreOutgoing, 1); err != nil {
		return fail("setsockopt PACKET_IGNORE_OUTGOING", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	tv := unix.NsecToTimeval(pollInterval.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("setsockopt SO_RCVTIMEO", err)
	}
	if len(filter) > 0 {
		prog := make([]unix.SockFilter, len(filter))
		for i, ins := range filter {
			prog[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fail("attach the filter", err)
		}
	}
	all := uint16(unix.ETH_P_ALL)
	sa := &unix.SockaddrLinklayer{Protocol: all<<8 | all>>8, Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

func (m *packetMirror) run() {
	defer close(m.done)
	for !m.stop.Load() {
		n, err := m.batch.Recv(uintptr(m.fd), batchSize, unix.MSG_WAITFORONE)
		if err != nil {
			continue // the poll interval passed, or a signal: check stop
		}
		m.forward(n)
	}
	// What the port received before Stop is still sent: a socket buffer,
	// which drains in milliseconds. A port that goes on receiving (at
	// line rate, or its own copies) would keep the drain from ending.
	for end := time.Now().Add(drainTime); time.Now().Before(end); {
		n, err := m.batch.Recv(uintptr(m.fd), batchSize, unix.MSG_DONTWAIT)
		if err != nil || n == 0 {
			return
		}
		m.forward(n)
	}
}

// forward sends the n frames just received.
func (m *packetMirror) forward(n int) {
	for i := range n {
		data, _ := m.batch.Received(i)
		m.batch.SetSend(i, len(data), nil)
	}
	m.n, m.pos, m.ok = n, 0, 0
	_ = m.raw.Control(m.sendFn)
	m.mirrored.Add(uint64(m.ok))
	m.failed.Add(uint64(n - m.ok))
}

// send sends the batch without waiting. A frame the kernel refuses (its
// buffer full, no route) is skipped and counted; the rest still go.
func (m *packetMirror) send(fd uintptr) {
	for m.pos < m.n {
		k, err := m.batch.Send(fd, m.pos, m.n)
		switch {
		case err == nil:
			m.pos += k
			m.ok += k
		case errors.Is(err, unix.ECONNREFUSED):
			// An ICMP error about an earlier datagram; try this one again.
		default:
			m.pos++
		}
	}
}

// Stats implements Mirror.
func (m *packetMirror) Stats() Stats {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	// PACKET_STATISTICS clears the kernel's counts on each read: add them up.
	var st unix.TpacketStats
	l := uint32(unsafe.Sizeof(st))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(m.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0); errno == 0 {
		m.dropped += uint64(st.Drops)
	}
	return Stats{Mirrored: m.mirrored.Load(), Failed: m.failed.Load(), Dropped: m.dropped}
}

// Port implements Mirror.
func (m *packetMirror) Port() Port { return m.port }

// Method implements Mirror.
func (m *packetMirror) Method() string { return MethodPacket }

// Stop implements Mirror.
func (m *packetMirror) Stop() {
	m.stop.Store(true)
	<-m.done
	m.close()
}

func (m *packetMirror) close() {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	unix.Close(m.fd)
	m.fd = -1
	m.conn.Close()
}
