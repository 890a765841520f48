package live

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/sink"
)

// Hub hands the frames the engines write to the viewers connected now.
// Each engine has a tap of its own (Tap); a viewer has a queue bounded in
// bytes, which the taps fill and the viewer's goroutine empties. The
// engines never wait for a viewer: a batch that does not fit in its queue
// is lost for that viewer alone, counted.
type Hub struct {
	// viewers is a copy-on-write list: the taps load it once per frame
	// and per batch, without a lock; with no viewer that is all they do.
	viewers atomic.Pointer[[]*viewer]
	mu      sync.Mutex // serialises changes of viewers; guards taps, closed
	taps    []*tap
	closed  bool // sinkd stops: viewers end once their queues are empty
	queue   int  // bytes each viewer's queue holds at most
	stats   counters
	pool    sync.Pool // of *batch
}

// counters are the hub's totals over all viewers, for /metrics and the
// summary; each is added to once per batch, not per frame.
type counters struct {
	viewers, served             atomic.Int64
	sent, filtered, lost, bytes atomic.Uint64
	requests                    [numResults]atomic.Uint64
	disconnects                 [numReasons]atomic.Uint64
}

// NewHub returns a hub whose viewers each queue at most queue bytes of
// frames.
func NewHub(queue int) *Hub {
	h := &Hub{queue: queue}
	h.pool.New = func() any { return new(batch) }
	return h
}

// Tap returns a new engine's tap; it is called once per engine, before
// the capture starts.
func (h *Hub) Tap() sink.Tap {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := &tap{hub: h, engine: len(h.taps)}
	h.taps = append(h.taps, t)
	return t
}

// add makes the taps hand v frames from their next one on.
func (h *Hub) add(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var vs []*viewer
	if old := h.viewers.Load(); old != nil {
		vs = append(vs, *old...)
	}
	vs = append(vs, v)
	h.viewers.Store(&vs)
	h.stats.viewers.Add(1)
	h.stats.served.Add(1)
	if h.closed {
		v.close()
	}
}

// close ends every viewer, those to come too, once its queue is empty:
// the capture is over.
func (h *Hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, v := range h.connected() {
		v.close()
	}
}

// remove makes the taps forget v; what they still hold for it they
// give back at their next frame or batch.
func (h *Hub) remove(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var vs []*viewer
	for _, x := range *h.viewers.Load() {
		if x != v {
			vs = append(vs, x)
		}
	}
	h.viewers.Store(&vs)
	h.stats.viewers.Add(-1)
}

// connected returns the viewers connected now.
func (h *Hub) connected() []*viewer {
	if vs := h.viewers.Load(); vs != nil {
		return *vs
	}
	return nil
}

// source returns source src of engine's tap.
func (h *Hub) source(engine, src int) sink.SourceInfo {
	h.mu.Lock()
	t := h.taps[engine]
	h.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sources[src]
}

// sources returns the sources every engine has seen, each engine's in the
// order they came.
func (h *Hub) sources() []sink.SourceInfo {
	h.mu.Lock()
	taps := h.taps
	h.mu.Unlock()
	var all []sink.SourceInfo
	for _, t := range taps {
		t.mu.Lock()
		all = append(all, t.sources...)
		t.mu.Unlock()
	}
	return all
}

// getBatch returns an empty batch of engine.
func (h *Hub) getBatch(engine int) *batch {
	b := h.pool.Get().(*batch)
	b.engine = engine
	return b
}

// putBatch gives b back for reuse.
func (h *Hub) putBatch(b *batch) {
	b.data, b.frames = b.data[:0], b.frames[:0]
	h.pool.Put(b)
}

// frameOverhead is what a frame costs a queue besides its bytes: about
// its record in the stream.
const frameOverhead = 32

// batch is frames of one engine copied for one viewer, each cut to the
// viewer's snap length.
type batch struct {
	engine int
	data   []byte
	frames []frame
}

// frame is one frame of a batch: data[off:off+n].
type frame struct {
	src         int32
	off, n, len uint32
	ts          int64 // Unix nanoseconds
}

// size is what b costs its queue.
func (b *batch) size() int { return len(b.data) + len(b.frames)*frameOverhead }

// add copies a frame into b.
func (b *batch) add(src int, ts time.Time, data []byte, length int) {
	b.frames = append(b.frames, frame{src: int32(src), off: uint32(len(b.data)), n: uint32(len(data)), len: uint32(length), ts: ts.UnixNano()})
	b.data = append(b.data, data...)
}

// bytes returns f's bytes.
func (b *batch) bytes(f frame) []byte { return b.data[f.off : f.off+f.n] }

// sourceID names a source of an engine.
type sourceID struct{ engine, src int }

// tap is one engine's: called from that engine's goroutine only.
type tap struct {
	hub    *Hub
	engine int
	// mu guards sources, which the engine appends to and viewers and
	// /v1/ports read.
	mu      sync.Mutex
	sources []sink.SourceInfo
	// seen is the viewer list views were made for.
	seen  *[]*viewer
	views []*view
}

// view is what a tap keeps for one viewer.
type view struct {
	v *viewer
	// want says, by source, whether v wants its frames: 0 not known
	// yet, 1 yes, -1 no.
	want []int8
	// b is the batch being filled, nil until the batch's first frame
	// for v; spare is the one to fill next, when v had one free.
	b, spare *batch
	// stalled says v's queue was full when the batch began: its frames
	// are counted, not copied.
	stalled bool
	// lost counts by source the frames of this batch lost for v, of the
	// sources touched.
	lost    []uint64
	touched []int
}

// Source implements sink.Tap.
func (t *tap) Source(i int, s sink.SourceInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.sources) <= i {
		t.sources = append(t.sources, sink.SourceInfo{})
	}
	t.sources[i] = s
}

// Frame implements sink.Tap.
func (t *tap) Frame(src int, ts time.Time, data []byte, length int) {
	if vs := t.hub.viewers.Load(); vs != t.seen {
		t.resync(vs)
	}
	for _, w := range t.views {
		if w.wants(t, src) {
			w.add(t, src, ts, data, length)
		}
	}
}

// Flush implements sink.Tap: each viewer's batch goes to its queue.
func (t *tap) Flush() {
	if vs := t.hub.viewers.Load(); vs != t.seen {
		t.resync(vs)
	}
	for _, w := range t.views {
		w.flush(t)
	}
}

// resync makes views those of the viewers vs: a new viewer gets a view,
// a departed one's batch goes back to the pool.
func (t *tap) resync(vs *[]*viewer) {
	var views []*view
	if vs != nil {
		for _, v := range *vs {
			w := &view{v: v}
			for _, old := range t.views {
				if old.v == v {
					w = old
				}
			}
			views = append(views, w)
		}
	}
	for _, old := range t.views {
		if containsView(views, old) {
			continue
		}
		for _, b := range []*batch{old.b, old.spare} {
			if b != nil {
				t.hub.putBatch(b)
			}
		}
		old.b, old.spare = nil, nil
	}
	t.seen, t.views = vs, views
}

func containsView(views []*view, w *view) bool {
	for _, x := range views {
		if x == w {
			return true
		}
	}
	return false
}

// wants reports whether w's viewer wants source src's frames, deciding
// once per source.
func (w *view) wants(t *tap, src int) bool {
	for len(w.want) <= src {
		w.want = append(w.want, 0)
	}
	if w.want[src] == 0 {
		t.mu.Lock()
		si := t.sources[src]
		t.mu.Unlock()
		w.want[src] = -1
		if w.v.sel.wants(si) {
			w.want[src] = 1
		}
	}
	return w.want[src] > 0
}

// add copies a frame into w's batch, or counts it lost when w's viewer
// is stalled.
func (w *view) add(t *tap, src int, ts time.Time, data []byte, length int) {
	v := w.v
	if w.b == nil && !w.stalled {
		if v.full.Load() {
			w.stalled = true
		} else if w.b, w.spare = w.spare, nil; w.b != nil {
			w.b.engine = t.engine
		} else {
			w.b = t.hub.getBatch(t.engine)
		}
	}
	if !v.whole && len(data) > v.snap {
		data = data[:v.snap]
	}
	if w.stalled || w.b.size()+len(data)+frameOverhead > v.max {
		w.count(src)
		return
	}
	w.b.add(src, ts, data, length)
}

// count counts a frame of src lost.
func (w *view) count(src int) {
	for len(w.lost) <= src {
		w.lost = append(w.lost, 0)
	}
	if w.lost[src] == 0 {
		w.touched = append(w.touched, src)
	}
	w.lost[src]++
}

// flush hands the batch to w's viewer, and what it lost.
func (w *view) flush(t *tap) {
	if w.b != nil {
		ok, next := w.v.put(w.b)
		if !ok {
			for _, f := range w.b.frames {
				w.count(int(f.src))
			}
			// Lost: filled again next time.
			next = w.b
			next.data, next.frames = next.data[:0], next.frames[:0]
		}
		if next != nil {
			if w.spare != nil {
				t.hub.putBatch(w.spare)
			}
			w.spare = next
		}
		w.b = nil
	}
	w.stalled = false
	if len(w.touched) == 0 {
		return
	}
	w.v.addLost(t.engine, w.lost, w.touched)
	for _, src := range w.touched {
		w.lost[src] = 0
	}
	w.touched = w.touched[:0]
}
