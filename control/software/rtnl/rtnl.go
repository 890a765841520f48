//go:build linux

// Package rtnl is the software backend's rtnetlink client: requests carry
// a sequence number, only replies with that number and this socket's port
// id are taken, and an NLMSG_ERROR answers with its errno; a Conn can also
// subscribe to multicast groups (link notifications). Package rtnltest
// answers a Conn's requests in tests, as mdlayher/netlink's nltest does.
package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"golang.org/x/sys/unix"
)

// Message is one netlink message: its header and payload.
type Message struct {
	Header unix.NlMsghdr
	Data   []byte
}

// Socket is what a Conn sends and receives datagrams through: a netlink
// socket (Dial), or a test's (package rtnltest).
type Socket interface {
	Send(b []byte) error
	Receive(b []byte) (int, error)
	Close() error
}

// Conn is an rtnetlink connection. It is not safe for concurrent use.
type Conn struct {
	sock Socket
	pid  uint32
	seq  uint32
	buf  []byte
}

// NewConn returns a Conn over sock, whose port id is pid (what the kernel
// puts in its replies).
func NewConn(sock Socket, pid uint32) *Conn {
	return &Conn{sock: sock, pid: pid, seq: rand.Uint32(), buf: make([]byte, 1<<16)}
}

// Dial opens an rtnetlink socket in the caller's network namespace,
// subscribed to groups (unix.RTMGRP_*; 0 for requests only).
func Dial(groups uint32) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	nl, ok := sa.(*unix.SockaddrNetlink)
	if err != nil || !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink port id: %v", err)
	}
	// Non-blocking, so that the runtime's poller waits for it and Close
	// ends a Receive under way.
	return NewConn(fileSocket{os.NewFile(uintptr(fd), "rtnetlink")}, nl.Pid), nil
}

// fileSocket is a netlink socket; a write goes to the kernel.
type fileSocket struct{ f *os.File }

func (s fileSocket) Send(b []byte) error {
	_, err := s.f.Write(b)
	return err
}

func (s fileSocket) Receive(b []byte) (int, error) { return s.f.Read(b) }

func (s fileSocket) Close() error { return s.f.Close() }

// Close closes the connection; a Receive under way returns os.ErrClosed.
func (c *Conn) Close() error { return c.sock.Close() }

// Execute sends a request of type typ (unix.RTM_GETROUTE) with body and
// returns the replies to it: with unix.NLM_F_DUMP in flags every message
// up to NLMSG_DONE, else those before the kernel's acknowledgement. An
// NLMSG_ERROR reply is returned as its errno (a unix.Errno).
func (c *Conn) Execute(typ, flags uint16, body []byte) ([]Message, error) {
	c.seq++
	flags |= unix.NLM_F_REQUEST
	dump := flags&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	if !dump {
		flags |= unix.NLM_F_ACK
	}
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(req[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], flags)
	binary.NativeEndian.PutUint32(req[8:], c.seq)
	binary.NativeEndian.PutUint32(req[12:], c.pid)
	if err := c.sock.Send(append(req, body...)); err != nil {
		return nil, fmt.Errorf("rtnetlink send: %w", err)
	}
	var out []Message
	for {
		msgs, err := c.Receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq || m.Header.Pid != c.pid {
				continue // not an answer to this request
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if err := errnoOf(m); err != nil || !dump {
					return out, err
				}
			case unix.NLMSG_DONE:
				return out, errnoOf(m)
			default:
				out = append(out, m)
			}
		}
	}
}

// errnoOf returns the error an NLMSG_ERROR or NLMSG_DONE message carries
// (a negative errno first in its payload; 0 acknowledges), or nil.
func errnoOf(m Message) error {
	if len(m.Data) < 4 {
		if m.Header.Type == unix.NLMSG_ERROR {
			return errors.New("rtnetlink: truncated error message")
		}
		return nil
	}
	if e := int32(binary.NativeEndian.Uint32(m.Data)); e < 0 {
		return unix.Errno(-e)
	}
	return nil
}

// ErrTruncated is a datagram whose messages' lengths do not add up.
var ErrTruncated = errors.New("rtnetlink: truncated message")

// Receive waits for a datagram and returns its messages, whatever they
// answer (notifications have sequence number 0). An overrun socket buffer
// is unix.ENOBUFS; a closed Conn os.ErrClosed.
func (c *Conn) Receive() ([]Message, error) {
	n, err := c.sock.Receive(c.buf)
	if err != nil {
		return nil, err
	}
	return Parse(c.buf[:n])
}

// Parse splits a datagram into its messages; their payloads are copies.
func Parse(b []byte) ([]Message, error) {
	var out []Message
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return nil, ErrTruncated
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, ErrTruncated
		}
		out = append(out, Message{
			Header: unix.NlMsghdr{Len: uint32(l), Type: binary.NativeEndian.Uint16(b[4:6]), Flags: binary.NativeEndian.Uint16(b[6:8]),
				Seq: binary.NativeEndian.Uint32(b[8:12]), Pid: binary.NativeEndian.Uint32(b[12:16])},
			Data: append([]byte(nil), b[unix.NLMSG_HDRLEN:l]...),
		})
		b = b[min(align(l), len(b)):]
	}
	return out, nil
}

// Marshal is m as it goes on the wire, its header's length set.
func (m Message) Marshal() []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, align(unix.NLMSG_HDRLEN+len(m.Data)))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(m.Data)))
	binary.NativeEndian.PutUint16(b[4:], m.Header.Type)
	binary.NativeEndian.PutUint16(b[6:], m.Header.Flags)
	binary.NativeEndian.PutUint32(b[8:], m.Header.Seq)
	binary.NativeEndian.PutUint32(b[12:], m.Header.Pid)
	b = append(b, m.Data...)
	return b[:cap(b)]
}

func align(n int) int { return (n + 3) &^ 3 }

// Attr is one rtnetlink attribute.
type Attr struct {
	Type  uint16
	Value []byte
}

// Attrs splits rtnetlink attributes (syscall's parser knows only links,
// addresses and routes); it stops at a malformed one.
func Attrs(b []byte) []Attr {
	var out []Attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			break
		}
		out = append(out, Attr{Type: binary.NativeEndian.Uint16(b[2:4]), Value: b[4:l]})
		b = b[min(align(l), len(b)):]
	}
	return out
}

// AppendAttr appends an attribute of type typ and value v to b, padded.
func AppendAttr(b []byte, typ uint16, v []byte) []byte {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
