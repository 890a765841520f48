package archive

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpCounts returns the bytes a TCP connection's peer acknowledged and
// sent, as the kernel counts them; zeros for other connections.
func tcpCounts(c net.Conn) (acked, received uint64) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			acked, received = info.Bytes_acked, info.Bytes_received
		}
	})
	return acked, received
}
