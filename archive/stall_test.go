package archive

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A connection that moves bytes, however slowly, is never cut; one that
// moves nothing for the stall time fails with ErrStall, reading or
// writing.
func TestStallConn(t *testing.T) {
	const stall = 200 * time.Millisecond
	pipe := func() (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		c, _ := stallDial(func(context.Context, string, string) (net.Conn, error) { return a, nil }, stall)(context.Background(), "tcp", "")
		return c, b
	}

	c, peer := pipe()
	go func() {
		// Slow but steady: a byte every stall/4, for 3 stall times.
		for range 12 {
			time.Sleep(stall / 4)
			if _, err := peer.Write([]byte{1}); err != nil {
				return
			}
		}
		peer.Close()
	}()
	if b, err := io.ReadAll(c); err != nil || len(b) != 12 {
		t.Fatalf("a slow transfer was cut: %d bytes, %v", len(b), err)
	}

	c, _ = pipe()
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, ErrStall) || time.Since(start) < stall {
		t.Fatalf("an idle read: %v after %v, want ErrStall after %v", err, time.Since(start), stall)
	}

	c, peer = pipe()
	go io.CopyN(io.Discard, peer, 3*stallChunk) // takes some, then nothing
	_, err = c.Write(make([]byte, 8*stallChunk))
	if !errors.Is(err, ErrStall) {
		t.Fatalf("a write nobody reads: %v, want ErrStall", err)
	}
}
