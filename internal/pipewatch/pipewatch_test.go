package pipewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatch closes (or not) the far end of real pipes, sockets and files.
func TestWatch(t *testing.T) {
	tests := []struct {
		name string
		// open returns the output to watch and a function that makes its
		// reader go away, nil when it has none.
		open func(t *testing.T) (out *os.File, leave func())
	}{
		{"pipe", func(t *testing.T) (*os.File, func()) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return w, func() { r.Close() }
		}},
		{"socket", func(t *testing.T) (*os.File, func()) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			out, peer := os.NewFile(uintptr(fds[0]), "out"), os.NewFile(uintptr(fds[1]), "peer")
			t.Cleanup(func() { out.Close(); peer.Close() })
			return out, func() { peer.Close() }
		}},
		{"regular file", func(t *testing.T) (*os.File, func()) {
			f, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, leave := tt.open(t)
			ctx, stop, err := Watch(context.Background(), out)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			// The reader is there: nothing to tell yet.
			select {
			case <-ctx.Done():
				t.Fatalf("ended with the reader there: %v", context.Cause(ctx))
			case <-time.After(100 * time.Millisecond):
			}
			if leave == nil {
				stop()
				if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
					t.Fatalf("after stop: cause %v, want context.Canceled", cause)
				}
				return
			}
			start := time.Now()
			leave()
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the reader left 10 s ago; not noticed")
			}
			if cause := context.Cause(ctx); cause != ErrReaderGone {
				t.Fatalf("cause %v, want ErrReaderGone", cause)
			}
			t.Logf("noticed in %v", time.Since(start))
			// The caller's descriptor is its own still.
			if _, err := out.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
				t.Errorf("write after the reader left: %v, want EPIPE", err)
			}
		})
	}
}

// TestWatchEndsWithParent: the copy ends with its parent, and stop then
// returns (the polling thread is released).
func TestWatchEndsWithParent(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	parent, cancel := context.WithCancel(context.Background())
	ctx, stop, err := Watch(parent, w)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-ctx.Done()
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		t.Fatalf("cause %v, want context.Canceled", cause)
	}
	stop()
	stop() // twice is harmless
}
