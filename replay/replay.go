//go:build linux

// Package replay sends the frames of a capture file to a sink wrapped as the
// NIC wraps its copies: one frame per UDP datagram, with a zero UDP checksum
// over IPv6, hop limit 64, and flow label 0 or a port's tag. It is how a sink path is tested
// before hardware capture is turned on.
package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/encapsock"
	"github.com/dpcap/dpcap/internal/mmsg"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// MaxFrame is the largest frame one UDP datagram can carry.
const MaxFrame = 65507

// Config says where and how fast to send.
type Config struct {
	Sink netip.AddrPort
	// SrcPort is the UDP source port; 0 lets the kernel choose.
	SrcPort uint16
	// PPS paces sending at this many packets per second; 0 sends as fast
	// as possible.
	PPS float64
	// Loops is how many times the file is sent; 0 means until ctx ends.
	Loops int
	// Count stops after this many packets; 0 means no limit.
	Count uint64
	// Tag is put in the IPv6 flow label, as dpcap's templates tag a port
	// (IPv6 sinks only); 0 leaves the label 0.
	Tag       uint32
	BatchSize int
	Logger    *slog.Logger
}

// Stats count what was sent and skipped.
type Stats struct {
	Sent    uint64
	Bytes   uint64 // inner frame bytes sent
	Skipped uint64 // frames too large for a datagram, or cut short in the file
	// Refused counts ICMP port-unreachable reports: nothing listened at the
	// sink when an earlier datagram arrived. Hosts rate-limit these reports,
	// so it is a lower bound of the datagrams lost. When none came during
	// the run, Send waits RefusalWait after the last datagram for one.
	Refused uint64
	Elapsed time.Duration
}

// RefusalWait is how long Send waits after the last datagram for the
// sink's refusal of the datagrams before, when none came: the refusal of
// a short file sent in one batch arrives after it.
const RefusalWait = 200 * time.Millisecond

// Opener opens the capture file anew for each loop.
type Opener func() (io.ReadCloser, error)

type sender struct {
	cfg   Config
	raw   syscall.RawConn
	batch *mmsg.Batch
	n     int // slots filled
	from  int
	sent  int
	err   error
	// refusedNow: a batch was cut short, maybe by a refusal, which
	// countRefusals then takes.
	refusedNow bool
	fn         func(fd uintptr) bool
	stats      Stats
	start      time.Time
	epoch      time.Time // when the first packet was ready: the pacing schedule's zero
}

// Send replays the file until it has been sent Loops times, Count packets
// were sent, or ctx ends (which is not an error).
func Send(ctx context.Context, cfg Config, open Opener) (Stats, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = capture.DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := encapsock.Dial(ctx, encapsock.Config{Sink: cfg.Sink, SrcPort: cfg.SrcPort, Tag: cfg.Tag})
	if err != nil {
		return Stats{}, err
	}
	defer conn.Close()
	s := &sender{cfg: cfg, batch: mmsg.NewBatch(cfg.BatchSize, MaxFrame)}
	if s.raw, err = conn.SyscallConn(); err != nil {
		return Stats{}, err
	}
	if err := s.queueRefusals(); err != nil {
		return Stats{}, err
	}
	s.fn = s.sendmmsg
	s.start = time.Now()
	for loop := 0; cfg.Loops == 0 || loop < cfg.Loops; loop++ {
		done, err := s.sendFile(ctx, open)
		if err != nil {
			return s.finish(), err
		}
		if done {
			break
		}
	}
	if err := s.flush(); err != nil {
		return s.finish(), err
	}
	st := s.finish()
	if ctx.Err() == nil {
		if st.Refused == 0 {
			s.awaitError(RefusalWait)
		}
		s.countRefusals()
		st.Refused = s.stats.Refused
	}
	return st, nil
}

// queueRefusals makes the kernel queue each ICMP error on the socket
// (IP_RECVERR): the socket's pending error holds one at a time, and a
// sendmmsg that meets it midway returns a short count, not the error. It
// also makes soft errors (packet too big) fail the next send, as hard ones
// (port unreachable) do.
func (s *sender) queueRefusals() error {
	level, opt, name := unix.IPPROTO_IP, unix.IP_RECVERR, "IP_RECVERR"
	if a := s.cfg.Sink.Addr(); a.Is6() && !a.Is4In6() {
		level, opt, name = unix.IPPROTO_IPV6, unix.IPV6_RECVERR, "IPV6_RECVERR"
	}
	var serr error
	if err := s.raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt %s: %w", name, serr)
	}
	return nil
}

// countRefusals takes the socket's queued errors (takeErrors).
func (s *sender) countRefusals() {
	_ = s.raw.Control(func(fd uintptr) { s.takeErrors(int(fd)) })
}

// takeErrors empties fd's error queue, counting the sink's ICMP port
// unreachable reports in Refused; it returns how many errors it took.
func (s *sender) takeErrors(fd int) (n int) {
	var buf [64]byte
	var oob [512]byte
	for {
		_, oobn, _, _, err := unix.Recvmsg(fd, buf[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n // EAGAIN: the queue is empty
		}
		n++
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			recvErr := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR ||
				m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
			// struct sock_extended_err starts with ee_errno.
			if recvErr && len(m.Data) >= 4 && unix.Errno(binary.NativeEndian.Uint32(m.Data)) == unix.ECONNREFUSED {
				s.stats.Refused++
			}
		}
	}
}

// awaitError waits up to d for an error to be reported on the socket.
func (s *sender) awaitError(d time.Duration) {
	_ = s.raw.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd)}} // errors are reported whatever the events
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			if _, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds())+1); err != unix.EINTR {
				return
			}
		}
	})
}

func (s *sender) finish() Stats {
	s.stats.Elapsed = time.Since(s.start)
	return s.stats
}

// sendFile sends one pass over the file; done reports that Count was
// reached or ctx ended.
func (s *sender) sendFile(ctx context.Context, open Opener) (done bool, err error) {
	f, err := open()
	if err != nil {
		return true, err
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		return true, err
	}
	for {
		if ctx.Err() != nil {
			return true, nil
		}
		if s.cfg.Count > 0 && s.stats.Sent+uint64(s.n) >= s.cfg.Count {
			return true, nil
		}
		data, ci, lt, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return true, fmt.Errorf("read capture file: %w", err)
		}
		// Each packet's own: a pcapng file has no link type of its own.
		if lt != layers.LinkTypeEthernet {
			return true, fmt.Errorf("replay needs Ethernet frames; a packet's link type is %s (%d)", lt, int(lt))
		}
		if len(data) > MaxFrame || ci.CaptureLength < ci.Length {
			s.stats.Skipped++
			continue
		}
		n := copy(s.batch.Buf(s.n), data)
		s.batch.SetSend(s.n, n, nil)
		s.n++
		s.stats.Bytes += uint64(n)
		if s.n == s.batch.Len() || s.cfg.PPS > 0 {
			if err := s.paced(ctx); err != nil {
				return true, err
			}
		}
	}
}

// paced sends the filled slots, waiting for each one's turn when a rate is
// set.
func (s *sender) paced(ctx context.Context) error {
	if s.cfg.PPS <= 0 {
		return s.flush()
	}
	// The schedule starts with the first packet, not with Send: time spent
	// opening the file would otherwise be caught up in a burst.
	if s.epoch.IsZero() {
		s.epoch = time.Now()
	}
	due := s.epoch.Add(time.Duration(float64(s.stats.Sent+uint64(s.n)-1) / s.cfg.PPS * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		// Send what is filled when the wait is long, and batch when the
		// rate is high enough that the wait is shorter than a wake-up.
		if wait < 200*time.Microsecond && s.n < s.batch.Len() {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return s.flush()
}

func (s *sender) sendmmsg(fd uintptr) bool {
	for s.from < s.n {
		n, err := s.batch.Send(fd, s.from, s.n)
		if err == unix.EAGAIN {
			return false
		}
		if (err == unix.ECONNREFUSED || err == unix.EMSGSIZE) && s.takeErrors(int(fd)) > 0 {
			// An ICMP report on an earlier datagram fails the next send:
			// port unreachable (nothing listens at the sink yet; keep
			// going, it may start) or packet too big (the kernel
			// fragments to the path's MTU from now on). An error not in
			// the queue is the send's own.
			continue
		}
		if err != nil {
			s.err = err
			return true
		}
		s.refusedNow = s.refusedNow || s.from+n < s.n // a refusal cuts a batch short
		s.from += n
		s.sent += n
	}
	return true
}

// flush sends every filled slot.
func (s *sender) flush() error {
	if s.n == 0 {
		return nil
	}
	s.from, s.sent, s.err = 0, 0, nil
	err := s.raw.Write(s.fn)
	s.stats.Sent += uint64(s.sent)
	s.n = 0
	if s.refusedNow {
		s.refusedNow = false
		s.countRefusals()
	}
	if err != nil {
		return fmt.Errorf("send to %s: %w", s.cfg.Sink, err)
	}
	if s.err != nil {
		return fmt.Errorf("send to %s: %w", s.cfg.Sink, s.err)
	}
	return nil
}
