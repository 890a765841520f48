//go:build linux

// Package linkwatch tells when network interfaces come, go or change, from
// the kernel's link notifications (rtnetlink, group RTMGRP_LINK): what a
// capture bound to an interface index needs to follow a VM's tap when the
// VM restarts and its tap is deleted and made again.
package linkwatch

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/control/software/rtnl"
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
	c *rtnl.Conn
}

// Open subscribes to link notifications.
func Open() (*Watcher, error) {
	c, err := rtnl.Dial(unix.RTMGRP_LINK)
	if err != nil {
		return nil, fmt.Errorf("linkwatch: %w", err)
	}
	return &Watcher{c: c}, nil
}

// Next waits for notifications and returns them. It returns ErrOverflow
// when some were lost, and os.ErrClosed once Close was called.
func (w *Watcher) Next() ([]Event, error) {
	msgs, err := w.c.Receive()
	if errors.Is(err, syscall.ENOBUFS) {
		return nil, ErrOverflow
	}
	if errors.Is(err, rtnl.ErrTruncated) {
		return nil, fmt.Errorf("linkwatch: %w", err)
	}
	if err != nil {
		return nil, err
	}
	var evs []Event
	for _, m := range msgs {
		if (m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		info := (*unix.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		ev := Event{Index: int(info.Index), Deleted: m.Header.Type == unix.RTM_DELLINK}
		for _, a := range rtnl.Attrs(m.Data[unix.SizeofIfInfomsg:]) {
			if a.Type == unix.IFLA_IFNAME {
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
func (w *Watcher) Close() error { return w.c.Close() }
