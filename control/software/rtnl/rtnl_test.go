//go:build linux

package rtnl_test

import (
	"errors"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/control/software/rtnl"
	"github.com/dpcap/dpcap/control/software/rtnl/rtnltest"
)

func msg(typ uint16, data ...byte) rtnl.Message {
	return rtnl.Message{Header: unix.NlMsghdr{Type: typ}, Data: data}
}

// TestExecute answers requests as the kernel may, and as it should not:
// only the replies with the request's sequence number and the socket's
// port id are taken, and an error reply is the request's error.
func TestExecute(t *testing.T) {
	stale := func(req rtnl.Message) rtnl.Message {
		m := msg(unix.RTM_NEWROUTE, 9)
		m.Header.Seq, m.Header.Pid = req.Header.Seq-1, rtnltest.PID
		return m
	}
	foreign := func(req rtnl.Message) rtnl.Message {
		m := msg(unix.RTM_NEWROUTE, 8)
		m.Header.Seq, m.Header.Pid = req.Header.Seq, rtnltest.PID+1
		return m
	}
	for _, tt := range []struct {
		name    string
		flags   uint16
		answer  func(req rtnl.Message) []rtnl.Message
		want    [][]byte // the replies' payloads
		wantErr error
	}{
		{"reply then ack", 0, func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{msg(unix.RTM_NEWROUTE, 1), rtnltest.Error(req, 0)}
		}, [][]byte{{1}}, nil},
		{"error", 0, func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{rtnltest.Error(req, unix.ENETUNREACH)}
		}, nil, unix.ENETUNREACH},
		{"a stale reply and another socket's are not taken", 0, func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{stale(req), foreign(req), msg(unix.RTM_NEWROUTE, 1), rtnltest.Error(req, 0)}
		}, [][]byte{{1}}, nil},
		{"a stale error is not the request's", 0, func(req rtnl.Message) []rtnl.Message {
			e := rtnltest.Error(req, unix.EBUSY)
			e.Header.Seq, e.Header.Pid = req.Header.Seq-1, rtnltest.PID
			return []rtnl.Message{e, msg(unix.RTM_NEWROUTE, 1), rtnltest.Error(req, 0)}
		}, [][]byte{{1}}, nil},
		{"dump", unix.NLM_F_DUMP, func(rtnl.Message) []rtnl.Message {
			return []rtnl.Message{msg(unix.RTM_NEWNEIGH, 1), msg(unix.RTM_NEWNEIGH, 2), rtnltest.Done()}
		}, [][]byte{{1}, {2}}, nil},
		{"dump interrupted", unix.NLM_F_DUMP, func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{msg(unix.RTM_NEWNEIGH, 1), rtnltest.Error(req, unix.EINTR)}
		}, nil, unix.EINTR},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got rtnl.Message
			c := rtnltest.Dial(func(req rtnl.Message) ([]rtnl.Message, error) {
				got = req
				return tt.answer(req), nil
			})
			defer c.Close()
			msgs, err := c.Execute(unix.RTM_GETROUTE, tt.flags, []byte{7, 0, 0, 0})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var payloads [][]byte
			for _, m := range msgs {
				payloads = append(payloads, m.Data)
			}
			if err == nil && !slices.EqualFunc(payloads, tt.want, slices.Equal) {
				t.Errorf("replies %v, want %v", payloads, tt.want)
			}
			wantFlags := unix.NLM_F_REQUEST | tt.flags
			if tt.flags&unix.NLM_F_DUMP == 0 {
				wantFlags |= unix.NLM_F_ACK
			}
			if got.Header.Type != unix.RTM_GETROUTE || got.Header.Flags != wantFlags || got.Header.Pid != rtnltest.PID || !slices.Equal(got.Data, []byte{7, 0, 0, 0}) {
				t.Errorf("request %+v", got)
			}
		})
	}
}

// TestSequenceNumbersAdvance: each request has a number of its own, so a
// late reply to one is never taken for the next's.
func TestSequenceNumbersAdvance(t *testing.T) {
	var seqs []uint32
	c := rtnltest.Dial(func(req rtnl.Message) ([]rtnl.Message, error) {
		seqs = append(seqs, req.Header.Seq)
		return []rtnl.Message{rtnltest.Error(req, 0)}, nil
	})
	for range 3 {
		if _, err := c.Execute(unix.RTM_GETLINK, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(seqs) != 3 || seqs[1] != seqs[0]+1 || seqs[2] != seqs[1]+1 {
		t.Errorf("sequence numbers %v", seqs)
	}
}

func TestParse(t *testing.T) {
	m := msg(unix.RTM_NEWLINK, 1, 2, 3, 4, 5)
	m.Header.Seq, m.Header.Pid = 7, 8
	b := append(m.Marshal(), msg(unix.NLMSG_DONE).Marshal()...)
	msgs, err := rtnl.Parse(b)
	if err != nil || len(msgs) != 2 || msgs[0].Header.Seq != 7 || msgs[0].Header.Pid != 8 || !slices.Equal(msgs[0].Data, []byte{1, 2, 3, 4, 5}) || msgs[1].Header.Type != unix.NLMSG_DONE {
		t.Fatalf("%+v %v", msgs, err)
	}
	for _, bad := range [][]byte{b[:10], b[:20], append(slices.Clone(b[:16]), 0xff)} {
		if _, err := rtnl.Parse(bad); !errors.Is(err, rtnl.ErrTruncated) {
			t.Errorf("Parse(%d bytes): %v", len(bad), err)
		}
	}
}

func TestAttrs(t *testing.T) {
	b := rtnl.AppendAttr(nil, unix.RTA_DST, []byte{1, 2, 3, 4, 5})
	b = rtnl.AppendAttr(b, unix.RTA_OIF, []byte{7, 0, 0, 0})
	a := rtnl.Attrs(append(b, 0xff, 0xff)) // a malformed tail is left
	if len(a) != 2 || a[0].Type != unix.RTA_DST || !slices.Equal(a[0].Value, []byte{1, 2, 3, 4, 5}) || a[1].Type != unix.RTA_OIF {
		t.Fatalf("%+v", a)
	}
}

// TestKernel asks the kernel itself: the loopback interface, and an error
// for one that is not there.
func TestKernel(t *testing.T) {
	c, err := rtnl.Dial(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	links, err := c.Execute(unix.RTM_GETLINK, unix.NLM_F_DUMP, make([]byte, unix.SizeofIfInfomsg))
	if err != nil || len(links) == 0 {
		t.Fatalf("links: %d, %v", len(links), err)
	}
	req := make([]byte, unix.SizeofIfInfomsg)
	req[4] = 0x7f // ifi_index 0x7f7f7f7f: no such interface
	req[5], req[6], req[7] = 0x7f, 0x7f, 0x7f
	if _, err := c.Execute(unix.RTM_GETLINK, 0, req); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("no such link: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receive(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
}
