//go:build linux

package control

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peers says who may use the API besides root and the daemon's own user:
// members of GID, when set, by their primary or supplementary groups.
type Peers struct {
	GID    int // -1: nobody else
	Logger *slog.Logger
}

// LookupGroup returns the GID of a group name (or number).
func LookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			return strconv.Atoi(name)
		}
		return 0, fmt.Errorf("group %s: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// peerListener refuses connections from peers Peers does not allow, by
// the kernel's word on who they are (SO_PEERCRED), whatever the socket
// file's mode has become.
type peerListener struct {
	net.Listener
	peers Peers
}

// Guard wraps ln so that only allowed peers get through.
func Guard(ln net.Listener, p Peers) net.Listener { return &peerListener{ln, p} }

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p, err := credentials(c)
		if err == nil && (p.uid == 0 || p.uid == os.Getuid() || (l.peers.GID >= 0 && p.inGroup(l.peers.GID))) {
			return c, nil
		}
		l.peers.Logger.Warn("refused an API connection", "uid", p.uid, "gid", p.gid, "groups", p.groups, "err", err)
		c.Close()
	}
}

// peer is who is at the other end of a unix socket, as the kernel says.
type peer struct {
	uid, gid int
	groups   []int // supplementary
}

func (p peer) inGroup(gid int) bool { return p.gid == gid || slices.Contains(p.groups, gid) }

func credentials(c net.Conn) (peer, error) {
	p := peer{uid: -1, gid: -1}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return p, fmt.Errorf("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return p, err
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		if cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); cerr != nil {
			return
		}
		p.uid, p.gid = int(cred.Uid), int(cred.Gid)
		p.groups, cerr = peerGroups(fd)
	}); err != nil {
		return p, err
	}
	return p, cerr
}

// peerGroups reads the peer's supplementary groups (SO_PEERGROUPS, Linux
// 4.13), growing the buffer when the kernel says it is too small.
func peerGroups(fd uintptr) ([]int, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case errno == unix.ERANGE && int(n/4) > len(buf):
			buf = make([]uint32, n/4)
			continue
		case errno != 0:
			return nil, fmt.Errorf("getsockopt SO_PEERGROUPS: %w", errno)
		}
		groups := make([]int, n/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups, nil
	}
}
