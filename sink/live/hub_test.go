package live

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/live/access"
)

// Tokens of the tests: a NOC's that sees everything and tenants'.
const (
	nocToken   = "noc-0123456789abcdef"
	vm1Token   = "tenant-vm1-0123456789"
	vm2Token   = "tenant-vm2-0123456789"
	tokensFile = "noc " + nocToken + " *\ntenant-1 " + vm1Token + " vm-1\ntenant-2 " + vm2Token + " vm-2\n"
)

// loadTokens writes the tests' tokens file and reads it as sinkd does.
func loadTokens(t testing.TB) *access.Tokens {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(tokensFile), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := access.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// grant is what token may see.
func grant(t testing.TB, toks *access.Tokens, token string) access.Grant {
	t.Helper()
	r := httptest.NewRequest("GET", "/v1/stream", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	g, err := toks.Authorize(r)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The sources of the tests, as the engine declares them with a port map.
var (
	vm1     = sink.SourceInfo{Interface: pcapout.Interface{Name: "vm-1", Description: "nic envelopes from 2001:db8::1"}, Port: "vm-1"}
	vm2     = sink.SourceInfo{Interface: pcapout.Interface{Name: "vm-2"}, Port: "vm-2"}
	pf0     = sink.SourceInfo{Interface: pcapout.Interface{Name: "pf0"}, Port: "pf0"}
	pf0vm1  = sink.SourceInfo{Interface: pcapout.Interface{Name: "pf0 to vm-1"}, Port: "pf0", To: "vm-1"}
	tagged  = sink.SourceInfo{Interface: pcapout.Interface{Name: "2001:db8::10 tag 5"}}
	sources = []sink.SourceInfo{vm1, vm2, pf0, pf0vm1, tagged}
)

// TestSelection: a viewer gets the sources its token's scope and its
// ports both take: a port matches its own copies and a PF's copies
// towards it; a source outside every port only with "*".
func TestSelection(t *testing.T) {
	toks := loadTokens(t)
	tests := []struct {
		token string
		ports []string
		want  []sink.SourceInfo
	}{
		{nocToken, nil, sources},
		{nocToken, []string{"vm-1"}, []sink.SourceInfo{vm1, pf0vm1}},
		{nocToken, []string{"pf0"}, []sink.SourceInfo{pf0, pf0vm1}},
		{nocToken, []string{"pf0 to vm-1"}, []sink.SourceInfo{pf0vm1}},
		{nocToken, []string{"2001:db8::10 tag 5", "vm-2"}, []sink.SourceInfo{vm2, tagged}},
		{vm1Token, nil, []sink.SourceInfo{vm1, pf0vm1}},
		{vm1Token, []string{"vm-1"}, []sink.SourceInfo{vm1, pf0vm1}},
		{vm1Token, []string{"vm-2"}, nil},
		{vm2Token, nil, []sink.SourceInfo{vm2}},
		{vm2Token, []string{"pf0"}, nil},
	}
	for _, tt := range tests {
		sel := selection{ports: tt.ports, scope: grant(t, toks, tt.token)}
		var got []sink.SourceInfo
		for _, si := range sources {
			if sel.wants(si) {
				got = append(got, si)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s asking for %q gets %v, want %v", sel.scope.Name, tt.ports, got, tt.want)
		}
	}
}

// frameOf is a frame of n bytes whose first bytes say its number.
func frameOf(i, n int) []byte {
	b := make([]byte, n)
	copy(b, fmt.Sprintf("%08d", i))
	return b
}

// everyone is the grant of a loopback endpoint without tokens.
func everyone(t testing.TB) access.Grant {
	var none *access.Tokens
	g, err := none.Authorize(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// connect adds a viewer of every port to h.
func connect(t testing.TB, h *Hub, snap int) *viewer {
	v := newViewer(h, selection{scope: everyone(t)}, snap, false)
	h.add(v)
	return v
}

// TestFullQueueLosesWholeBatches: a batch that does not fit in a viewer's
// queue is lost whole, counted by source; while the queue stays full the
// tap counts frames without copying them; once the viewer takes its
// queue, batches fit again.
func TestFullQueueLosesWholeBatches(t *testing.T) {
	const perBatch, size = 4, 100
	batchSize := perBatch * (size + frameOverhead)
	h := NewHub(2*batchSize + batchSize/2) // two batches and a half
	tp := h.Tap().(*tap)
	tp.Source(0, vm1)
	tp.Source(1, vm2)
	v := connect(t, h, 65535)
	ts := time.Unix(1700000000, 0)
	n := 0
	batch := func() {
		for range perBatch {
			tp.Frame(n%2, ts, frameOf(n, size), size)
			n++
		}
		tp.Flush()
	}
	for range 4 { // two fit, the third does not, the fourth meets a full queue
		batch()
	}
	if w := tp.views[0]; w.b != nil || w.stalled {
		t.Errorf("the tap holds a batch after Flush")
	}
	taken, closed := v.take(nil)
	if len(taken) != 2 || closed {
		t.Fatalf("%d batches queued, want 2", len(taken))
	}
	for i, b := range taken {
		if len(b.frames) != perBatch || string(b.bytes(b.frames[0])[:8]) != fmt.Sprintf("%08d", i*perBatch) {
			t.Errorf("batch %d: %d frames, first %q", i, len(b.frames), b.bytes(b.frames[0])[:8])
		}
		h.putBatch(b)
	}
	lost := map[sourceID]uint64{}
	v.lostCounts(lost)
	want := map[sourceID]uint64{{0, 0}: perBatch, {0, 1}: perBatch} // two batches, half of each source
	if fmt.Sprint(lost) != fmt.Sprint(want) || h.stats.lost.Load() != 2*perBatch {
		t.Errorf("lost %v (total %d), want %v", lost, h.stats.lost.Load(), want)
	}
	if v.full.Load() {
		t.Error("the queue is still full once taken")
	}
	batch() // fits again
	if taken, _ = v.take(nil); len(taken) != 1 || len(taken[0].frames) != perBatch {
		t.Fatalf("after the queue was taken: %d batches", len(taken))
	}
}

// TestSnapLength: the tap copies each frame cut to its viewer's snap
// length, whole when the viewer's expression needs it whole; the length
// on the wire stays.
func TestSnapLength(t *testing.T) {
	h := NewHub(1 << 20)
	tp := h.Tap()
	tp.Source(0, vm1)
	cut := connect(t, h, 64)
	whole := newViewer(h, selection{scope: everyone(t)}, 64, true)
	h.add(whole)
	tp.Frame(0, time.Unix(1, 0), frameOf(1, 1500), 1500)
	tp.Flush()
	for _, c := range []struct {
		v    *viewer
		want int
	}{{cut, 64}, {whole, 1500}} {
		b, _ := c.v.take(nil)
		if len(b) != 1 || b[0].frames[0].n != uint32(c.want) || b[0].frames[0].len != 1500 {
			t.Errorf("whole=%v: %+v, want %d bytes of 1500", c.v.whole, b[0].frames, c.want)
		}
	}
}

// TestViewerLeaves: the taps give back what they held for a viewer that
// left, and hand it nothing more.
func TestViewerLeaves(t *testing.T) {
	h := NewHub(1 << 20)
	tp := h.Tap().(*tap)
	tp.Source(0, vm1)
	v := connect(t, h, 65535)
	tp.Frame(0, time.Unix(1, 0), frameOf(1, 100), 100)
	h.remove(v)
	tp.Frame(0, time.Unix(1, 0), frameOf(2, 100), 100)
	tp.Flush()
	if len(tp.views) != 0 || v.pending() {
		t.Errorf("%d views left, queue pending %v", len(tp.views), v.pending())
	}
}

// TestNoViewerNoCost: with no viewer, and with a stalled one, the tap
// allocates nothing per frame or batch; with a viewer that keeps up,
// batches and their buffers are reused.
func TestNoViewerNoCost(t *testing.T) {
	data := frameOf(1, 1000)
	ts := time.Unix(1, 0)
	h := NewHub(1 << 20)
	tp := h.Tap()
	tp.Source(0, vm1)
	run := func() {
		for range 64 {
			tp.Frame(0, ts, data, len(data))
		}
		tp.Flush()
	}
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Errorf("no viewer: %v allocations per batch", a)
	}
	v := connect(t, h, 65535)
	var taken []*batch
	keepUp := func() {
		run()
		taken, _ = v.take(taken[:0])
		for _, b := range taken {
			v.recycle(b)
		}
	}
	keepUp() // the first batch grows its buffers
	if a := testing.AllocsPerRun(100, keepUp); a > 0.1 && !raceOn {
		t.Errorf("a viewer keeping up: %v allocations per batch", a)
	}
	for !v.full.Load() {
		run()
	}
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Errorf("a stalled viewer: %v allocations per batch", a)
	}
}

// BenchmarkTap measures what the taps cost an engine per frame (of 300
// bytes, 64 to a batch) with no viewer, one or four keeping up, and one
// stalled.
func BenchmarkTap(b *testing.B) {
	data := frameOf(1, 300)
	ts := time.Unix(1, 0)
	for _, c := range []struct {
		name            string
		viewers, stalls int
	}{{"viewers=0", 0, 0}, {"viewers=1", 1, 0}, {"viewers=4", 4, 0}, {"stalled=1", 0, 1}} {
		b.Run(c.name, func(b *testing.B) {
			h := NewHub(4 << 20)
			tp := h.Tap()
			tp.Source(0, vm1)
			var wg sync.WaitGroup
			for range c.viewers {
				v := connect(b, h, 65535)
				wg.Go(func() {
					var taken []*batch
					for {
						var closed bool
						taken, closed = v.take(taken[:0])
						for _, x := range taken {
							v.recycle(x)
						}
						if closed {
							return
						}
						<-v.wake
					}
				})
			}
			for range c.stalls {
				v := connect(b, h, 65535)
				for !v.full.Load() {
					for range 64 {
						tp.Frame(0, ts, data, len(data))
					}
					tp.Flush()
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tp.Frame(0, ts, data, len(data))
				if i%64 == 63 {
					tp.Flush()
				}
			}
			tp.Flush()
			b.StopTimer()
			h.close()
			wg.Wait()
		})
	}
}

// TestFullNeverOutlivesTheQueue: a tap that finds a viewer's queue full
// while the viewer takes it must not leave the queue marked full once it
// is empty: the taps would then count every frame lost, without waking
// the viewer, until its next statistics tick.
func TestFullNeverOutlivesTheQueue(t *testing.T) {
	h := NewHub(2 * (100 + frameOverhead))
	v := newViewer(h, selection{scope: everyone(t)}, 65535, false)
	one := func() *batch {
		b := h.getBatch(0)
		b.add(0, time.Unix(1, 0), frameOf(1, 100), 100)
		return b
	}
	for i := range 20000 {
		v.take(nil)
		v.put(one())
		v.put(one()) // the queue is full
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); v.put(one()) }() // does not fit, or fits after the take
		go func() { defer wg.Done(); v.take(nil) }()
		wg.Wait()
		if v.full.Load() && !v.pending() {
			t.Fatalf("round %d: the queue is empty and marked full", i)
		}
	}
}
