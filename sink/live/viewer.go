package live

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/live/access"
)

// selection is what a viewer asked for, within its scope.
type selection struct {
	// ports are the ports or sources asked for; none: all in scope.
	ports []string
	scope access.Grant
}

// inScope reports whether the scope lets a viewer see si: every source
// with All, else a port allowed, or a PF's copies towards a VF allowed.
func inScope(scope access.Grant, si sink.SourceInfo) bool {
	return scope.All() || si.Port != "" && scope.Allows(si.Port) || si.To != "" && scope.Allows(si.To)
}

// matches reports whether si is the port or source name: its port, the
// VF a PF's copy heads to, or its interface's name.
func matches(si sink.SourceInfo, name string) bool {
	return si.Port == name || si.To == name || si.Interface.Name == name
}

// wants reports whether the selection takes si's frames.
func (s selection) wants(si sink.SourceInfo) bool {
	if !inScope(s.scope, si) {
		return false
	}
	return len(s.ports) == 0 || slices.ContainsFunc(s.ports, func(p string) bool { return matches(si, p) })
}

// viewer is one connected viewer: its queue, filled by the taps and
// emptied by its own goroutine.
type viewer struct {
	sel selection
	// snap is the viewer's snap length; whole says the taps copy whole
	// frames (the expression sees them whole, as tcpdump's does) and the
	// viewer cuts them.
	snap  int
	whole bool
	max   int // bytes the queue holds at most
	hub   *Hub
	// full says a batch did not fit since the queue was last emptied:
	// the taps count the frames without copying them.
	full atomic.Bool
	wake chan struct{} // a batch came, or the end

	mu     sync.Mutex
	queue  []*batch
	queued int // bytes
	// free are batches the viewer wrote, for the taps to fill again:
	// their buffers keep their size.
	free   []*batch
	lost   map[sourceID]uint64
	closed bool // sinkd stops: the viewer ends once its queue is empty
}

func newViewer(h *Hub, sel selection, snap int, whole bool) *viewer {
	return &viewer{sel: sel, snap: snap, whole: whole, max: h.queue, hub: h, wake: make(chan struct{}, 1), lost: map[sourceID]uint64{}}
}

// signal wakes the viewer's goroutine.
func (v *viewer) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// maxFree bounds the batches a viewer keeps for reuse.
const maxFree = 8

// put queues b unless it does not fit; it reports whether it took b, and
// returns a batch to fill next (nil: none free).
func (v *viewer) put(b *batch) (bool, *batch) {
	v.mu.Lock()
	if v.closed || v.queued+b.size() > v.max {
		// Under the lock: a take meanwhile would find it set, not
		// have it set after, on an empty queue.
		v.full.Store(true)
		v.mu.Unlock()
		return false, nil
	}
	v.queue = append(v.queue, b)
	v.queued += b.size()
	var next *batch
	if n := len(v.free); n > 0 {
		next, v.free[n-1] = v.free[n-1], nil
		v.free = v.free[:n-1]
	}
	v.mu.Unlock()
	v.signal()
	return true, next
}

// recycle keeps b, written, for the taps to fill again, or gives it to
// the hub's pool.
func (v *viewer) recycle(b *batch) {
	b.data, b.frames = b.data[:0], b.frames[:0]
	v.mu.Lock()
	if len(v.free) < maxFree {
		v.free = append(v.free, b)
		b = nil
	}
	v.mu.Unlock()
	if b != nil {
		v.hub.putBatch(b)
	}
}

// addLost adds the frames engine's tap lost for v, by source.
func (v *viewer) addLost(engine int, lost []uint64, touched []int) {
	var n uint64
	v.mu.Lock()
	for _, src := range touched {
		v.lost[sourceID{engine, src}] += lost[src]
		n += lost[src]
	}
	v.mu.Unlock()
	v.hub.stats.lost.Add(n)
}

// take returns the batches queued, appended to into (whose batches it
// leaves to the caller), and whether sinkd stops.
func (v *viewer) take(into []*batch) ([]*batch, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	into = append(into, v.queue...)
	clear(v.queue)
	v.queue, v.queued = v.queue[:0], 0
	v.full.Store(false)
	return into, v.closed
}

// pending reports whether batches wait in the queue.
func (v *viewer) pending() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.queue) > 0
}

// lostCounts puts the frames lost for v, by source, into into.
func (v *viewer) lostCounts(into map[sourceID]uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, n := range v.lost {
		into[k] = n
	}
}

// lostTotal returns the frames lost for v, of every source: those its
// stream told too, and those it could not tell (its writes blocked).
func (v *viewer) lostTotal() uint64 {
	var n uint64
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, k := range v.lost {
		n += k
	}
	return n
}

// close ends the viewer once its queue is empty: sinkd stops.
func (v *viewer) close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.signal()
}
