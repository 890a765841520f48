package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// ErrStall is a connection to the store that sent and received nothing
// for the stall time (ClientOptions.Stall): a hung front end, a balancer
// that black-holes requests.
var ErrStall = errors.New("the store's connection stalled")

// stallChunk bounds one write, so that a large body makes progress in
// steps, not in one write that a slow link could take longer than the
// stall time to finish.
const stallChunk = 16 << 10

// stallConn fails a connection that moves no byte, either way, for
// stall. A read or write that waited that long fails only if nothing
// moved meanwhile: no byte read or written through the connection, and
// (TCP) no byte the peer acknowledged or sent, so that a request body
// still draining from the kernel's buffers over a slow link is progress.
// A large upload that makes progress is never cut; a request that the
// store accepted and never answers fails after stall.
type stallConn struct {
	net.Conn
	stall time.Duration
	moved atomic.Uint64 // bytes read and written through the connection
	// lastRead and lastWrite are what the last check of each direction
	// saw: each judges progress since its own last look.
	lastRead, lastWrite progress
}

// progress is what has moved on a connection so far.
type progress struct{ moved, acked, received uint64 }

func (c *stallConn) progressed(last *progress) bool {
	p := progress{moved: c.moved.Load()}
	p.acked, p.received = tcpCounts(c.Conn)
	changed := p != *last
	*last = p
	return changed
}

func (c *stallConn) Read(b []byte) (int, error) {
	for {
		c.Conn.SetReadDeadline(time.Now().Add(c.stall))
		n, err := c.Conn.Read(b)
		c.moved.Add(uint64(n))
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if !c.progressed(&c.lastRead) {
			return n, c.stalled(err)
		}
	}
}

func (c *stallConn) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
		m, err := c.Conn.Write(b[:min(len(b), stallChunk)])
		c.moved.Add(uint64(m))
		n += m
		b = b[m:]
		switch {
		case err == nil:
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return n, err
		case !c.progressed(&c.lastWrite):
			return n, c.stalled(err)
		}
	}
	return n, nil
}

func (c *stallConn) stalled(err error) error {
	return fmt.Errorf("%w: nothing sent or received for %v: %w", ErrStall, c.stall, err)
}

// stallDial wraps dial's connections in stallConn.
func stallDial(dial func(ctx context.Context, network, addr string) (net.Conn, error), stall time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc := &stallConn{Conn: c, stall: stall}
		sc.progressed(&sc.lastRead)
		sc.lastWrite = sc.lastRead
		return sc, nil
	}
}
