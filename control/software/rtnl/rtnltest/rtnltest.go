//go:build linux

// Package rtnltest answers an rtnl.Conn's requests in tests, as
// mdlayher/netlink's nltest does: a function takes each request and
// returns the replies, which the Conn then receives one datagram each.
package rtnltest

import (
	"encoding/binary"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/control/software/rtnl"
)

// PID is the port id of a Conn Dial returns.
const PID = 4242

// Func answers one request as the kernel would. Replies whose sequence
// number and port id are 0 get the request's; set them to answer as
// another request's reply would.
type Func func(req rtnl.Message) ([]rtnl.Message, error)

// Dial returns a Conn whose requests fn answers.
func Dial(fn Func) *rtnl.Conn {
	return rtnl.NewConn(&socket{fn: fn}, PID)
}

// Error is the kernel's NLMSG_ERROR reply to req: errno, or an
// acknowledgement when errno is 0.
func Error(req rtnl.Message, errno unix.Errno) rtnl.Message {
	data := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(data, uint32(-int32(errno)))
	copy(data[4:], req.Marshal()[:unix.NLMSG_HDRLEN])
	return rtnl.Message{Header: unix.NlMsghdr{Type: unix.NLMSG_ERROR}, Data: data}
}

// Done is the NLMSG_DONE that ends a dump.
func Done() rtnl.Message {
	return rtnl.Message{Header: unix.NlMsghdr{Type: unix.NLMSG_DONE, Flags: unix.NLM_F_MULTI}, Data: make([]byte, 4)}
}

type socket struct {
	fn Func

	mu     sync.Mutex
	queue  [][]byte
	closed bool
}

func (s *socket) Send(b []byte) error {
	reqs, err := rtnl.Parse(b)
	if err != nil {
		return err
	}
	if len(reqs) != 1 {
		return errors.New("rtnltest: one request per datagram")
	}
	replies, err := s.fn(reqs[0])
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range replies {
		if r.Header.Seq == 0 && r.Header.Pid == 0 {
			r.Header.Seq, r.Header.Pid = reqs[0].Header.Seq, reqs[0].Header.Pid
		}
		s.queue = append(s.queue, r.Marshal())
	}
	return nil
}

func (s *socket) Receive(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	if len(s.queue) == 0 {
		return 0, errors.New("rtnltest: receive with no reply queued (the kernel would block here)")
	}
	n := copy(b, s.queue[0])
	s.queue = s.queue[1:]
	return n, nil
}

func (s *socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
