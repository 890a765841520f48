//go:build linux

// Package linkwatch tells when network interfaces come, go or change, from
// the kernel's link notifications (rtnetlink, group RTMGRP_LINK): what a
// capture bound to an interface index needs to follow a VM's tap when the
// VM restarts and its tap is deleted and made again.
package linkwatch

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrOverflow means notifications were lost (the socket's buffer filled):
// whoever watches must look at every interface again.
var ErrOverflow = errors.New("link notifications were lost")

// Event is one interface's news.
type Event struct {
	Index   int
	Name    string
	Deleted bool // RTM_DELLINK; otherwise RTM_NEWLINK (created or changed)
}

// Watcher reads link notifications of the network namespace it was opened in.
type Watcher struct {
	f   *os.File
	buf []byte
}

// Open subscribes to link notifications.
func Open() (*Watcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("linkwatch: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("linkwatch: bind RTMGRP_LINK: %w", err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close ends a Next.
	return &Watcher{f: os.NewFile(uintptr(fd), "rtnetlink"), buf: make([]byte, 1<<16)}, nil
}

// Next waits for notifications and returns them. It returns ErrOverflow
// when some were lost, and os.ErrClosed once Close was called.
func (w *Watcher) Next() ([]Event, error) {
	n, err := w.f.Read(w.buf)
	if errors.Is(err, syscall.ENOBUFS) {
		return nil, ErrOverflow
	}
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(w.buf[:n])
	if err != nil {
		return nil, fmt.Errorf("linkwatch: %w", err)
	}
	var evs []Event
	for _, m := range msgs {
		if (m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		info := (*unix.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		ev := Event{Index: int(info.Index), Deleted: m.Header.Type == unix.RTM_DELLINK}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return nil, fmt.Errorf("linkwatch: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_IFNAME {
				ev.Name = string(trimNUL(a.Value))
			}
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// Close ends the subscription; a Next under way returns.
func (w *Watcher) Close() error { return w.f.Close() }
