package capture_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
	_ "github.com/dpcap/dpcap/capture/udp" // the default path
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
)

// The toy receive path, registered in one line: datagrams on a Unix
// socket, each one NIC envelope.
func init() { capture.Register(capture.Kind{Name: "toy", Flag: "toy", Open: openToy}) }

func openToy(cfg capture.Config) (capture.Opened, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: cfg.Target, Net: "unixgram"})
	if err != nil {
		return capture.Opened{}, fmt.Errorf("toy: %w", err)
	}
	return capture.Opened{Sources: []capture.Source{&toySource{c: c, buf: make([]byte, 65536)}}, Desc: "toy " + cfg.Target}, nil
}

// toySource reads one datagram per Read.
type toySource struct {
	c        *net.UnixConn
	buf      []byte
	pkts     [1]capture.Packet
	deadline capture.Deadline
	shut     bool
}

var toySender = netip.MustParseAddrPort("[2001:db8::7]:1")

func (s *toySource) Read(int) ([]capture.Packet, error) {
	if s.deadline.Passed() && !s.shut {
		return nil, os.ErrDeadlineExceeded
	}
	wait := capture.PollInterval
	if s.shut {
		wait = time.Millisecond
	}
	s.c.SetReadDeadline(time.Now().Add(wait))
	n, err := s.c.Read(s.buf)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && s.shut:
		return nil, io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, nil
	case err != nil:
		return nil, err
	}
	s.pkts[0] = capture.Packet{Data: s.buf[:n], Length: n, Timestamp: time.Now(), Src: toySender}
	return s.pkts[:], nil
}

func (s *toySource) SetReadDeadline(t time.Time) error { s.deadline.Set(t); return nil }
func (s *toySource) Drops() (uint64, error)            { return 0, nil }
func (s *toySource) Shut() error                       { s.shut = true; return nil }
func (s *toySource) Close() error                      { return s.c.Close() }
func (s *toySource) Framing() capture.Framing          { return capture.Framing{Kind: capture.Payloads} }

// A receive path is a package and one registration line: the toy is
// selected by its flag and feeds a real engine, whose file holds what was
// sent; without its flag the UDP socket is chosen.
func TestToyReceivePath(t *testing.T) {
	if k, _, err := capture.Select(func(string) (string, bool) { return "", false }); err != nil || k.Name != "udp" {
		t.Fatalf("without flags: path %q (%v), want udp", k.Name, err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "toy.sock")
	kind, target, err := capture.Select(func(flag string) (string, bool) { return sock, flag == "toy" })
	if err != nil || kind.Name != "toy" || target != sock {
		t.Fatalf("--toy %s: path %q, target %q (%v)", sock, kind.Name, target, err)
	}
	in, err := kind.Open(capture.Config{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Sources[0].Close()
	path := filepath.Join(dir, "out.pcap")
	out, err := pcapout.Open(pcapout.Options{Path: path, LinkType: layers.LinkTypeEthernet, SnapLen: 65535})
	if err != nil {
		t.Fatal(err)
	}
	e := sink.New(sink.Config{Source: in.Sources[0], Output: out})
	done := make(chan error, 1)
	go func() { done <- e.Run() }()

	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent [][]byte
	for i := range 3 {
		frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, fmt.Appendf(nil, "inner frame %d", i)...)
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, frame)
	}
	if _, err := c.Write([]byte("short")); err != nil { // not a frame: counted, not written
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); e.Stats().Received < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the engine received %d of 4 datagrams", e.Stats().Received)
		}
	}
	e.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.Written != 3 || st.MalformedTotal() != 1 || st.Accounted() != st.Received {
		t.Errorf("written %d, malformed %d, accounted %d of %d", st.Written, st.MalformedTotal(), st.Accounted(), st.Received)
	}
	pkts, _, err := pcapfile.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != len(sent) {
		t.Fatalf("the file holds %d packets, want %d", len(pkts), len(sent))
	}
	for i, p := range pkts {
		if !bytes.Equal(p.Data, sent[i]) {
			t.Errorf("packet %d: % x, want % x", i, p.Data, sent[i])
		}
	}
}
