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
	mu      sync.Mutex
	framing capture.Framing
	pkts    []capture.Packet
	drops   uint64
	// batches, when set, cuts the batches Read hands out after these
	// many packets, and beforeBatch runs before it hands out batch i.
	batches     []int
	beforeBatch func(i int)
	batch       int
}

func (f *fakeSource) Read(max int) ([]capture.Packet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pkts) == 0 {
		return nil, io.EOF
	}
	n := min(max, len(f.pkts))
	if f.batch < len(f.batches) {
		n = min(n, f.batches[f.batch])
	}
	if f.beforeBatch != nil {
		f.beforeBatch(f.batch)
	}
	f.batch++
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

func (f *fakeSource) Framing() capture.Framing { return f.framing }

// payloads is the framing of a UDP socket's packets.
var payloads = capture.Framing{Kind: capture.Payloads}
