//go:build linux

package control

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// Peers says who may use the API besides root and the daemon's own user:
// members (by primary group) of GID, when set.
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
		uid, gid, err := peerCred(c)
		if err == nil && (uid == 0 || uid == os.Getuid() || (l.peers.GID >= 0 && gid == l.peers.GID)) {
			return c, nil
		}
		l.peers.Logger.Warn("refused an API connection", "uid", uid, "gid", gid, "err", err)
		c.Close()
	}
}

func peerCred(c net.Conn) (uid, gid int, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, -1, fmt.Errorf("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, -1, err
	}
	if cerr != nil {
		return -1, -1, cerr
	}
	return int(cred.Uid), int(cred.Gid), nil
}
