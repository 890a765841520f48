package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// ErrStall is a connection to the store that sent and received nothing
// for the stall time (ClientOptions.Stall): a hung front end, a balancer
// that black-holes requests.
var ErrStall = errors.New("the store's connection stalled")

// stallChunk bounds one write, so that a large body makes progress (and
// moves the deadline) in steps, not in one write that a slow link could
// take longer than the stall time to finish.
const stallChunk = 16 << 10

// stallConn fails a connection that moves no byte, either way, for
// stall: every read and write moves the deadline of both. A large upload
// that makes progress is never cut; a request that the store accepted
// and never answers fails after stall.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c *stallConn) Read(b []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.stall))
	n, err := c.Conn.Read(b)
	return n, c.wrap(err)
}

func (c *stallConn) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		c.Conn.SetDeadline(time.Now().Add(c.stall))
		m, err := c.Conn.Write(b[:min(len(b), stallChunk)])
		n += m
		if err != nil {
			return n, c.wrap(err)
		}
		b = b[m:]
	}
	return n, nil
}

func (c *stallConn) wrap(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: nothing sent or received for %v: %w", ErrStall, c.stall, err)
	}
	return err
}

// stallDial wraps dial's connections in stallConn.
func stallDial(dial func(ctx context.Context, network, addr string) (net.Conn, error), stall time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: stall}, nil
	}
}
