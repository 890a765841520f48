package sink

import (
	"io"
	"sync"
	"time"

	"github.com/dpcap/dpcap/capture"
)

// fakeSource is a capture.Source over packets held in memory: the engine's
// test seam. It hands out its packets in batches and then ends (io.EOF),
// as a file does.
type fakeSource struct {
	mu    sync.Mutex
	pkts  []capture.Packet
	drops uint64
}

func (f *fakeSource) Read(max int) ([]capture.Packet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pkts) == 0 {
		return nil, io.EOF
	}
	n := min(max, len(f.pkts))
	b := f.pkts[:n]
	f.pkts = f.pkts[n:]
	return b, nil
}

func (f *fakeSource) SetReadDeadline(time.Time) error { return nil }

func (f *fakeSource) Drops() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drops, nil
}

// Shut keeps what is queued: the fake's queue is finite already.
func (f *fakeSource) Shut() error { return nil }

func (f *fakeSource) Close() error { return nil }
