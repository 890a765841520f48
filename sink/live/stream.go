package live

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/pcapout"
)

// statsEvery is how often a pcapng stream's statistics are written, when
// they changed.
const statsEvery = time.Second

// flushSize is what a stream buffers before writing, between the flushes
// after each batch.
const flushSize = 64 << 10

// flushEvery is the least time between two flushes of a stream: the
// batches that come meanwhile wait in the queue and go out in one write,
// with one wake-up of the viewer's goroutine. A write per batch made one
// viewer of every frame cost 1.5-1.8 times sinkd's CPU per packet (the
// socket write, the wake-up, the encoding); a write per 5 ms, 1.25-1.32
// times, for 3-4 ms more latency (docs/BENCHMARKS.md, "Live viewers").
const flushEvery = 5 * time.Millisecond

// out is where a viewer's stream goes: the HTTP response.
type out interface {
	io.Writer
	// Flush sends what was written.
	Flush() error
}

// request is what a viewer asked for, parsed.
type request struct {
	sel    selection
	expr   string
	filter *filter.Filter // nil: every frame
	snap   int
	format pcapout.Format
	count  uint64 // 0: no end
}

// streamer writes one viewer's stream: it runs on the viewer's goroutine.
type streamer struct {
	v      *viewer
	hub    *Hub
	req    request
	s      *pcapout.Stream
	w      out
	start  time.Time
	ifaces map[string]int // by interface name
	stats  []pcapout.InterfaceStats
	// iface is each source's interface by engine and source, -1 until
	// it has one.
	iface [][]int
	// lostSeen are the losses counted into stats, lostNow the latest.
	lostSeen, lostNow map[sourceID]uint64
	changed           bool
	sent, lost        uint64
	taken             []*batch
}

func newStreamer(h *Hub, v *viewer, req request, w out) *streamer {
	return &streamer{v: v, hub: h, req: req, w: w, start: time.Now(), ifaces: map[string]int{},
		lostSeen: map[sourceID]uint64{}, lostNow: map[sourceID]uint64{}}
}

// run streams until the viewer leaves (ctx), count frames were sent,
// sinkd stops or a write fails; it says which, with the write's error.
func (st *streamer) run(ctx context.Context) (reason, error) {
	st.s = pcapout.NewStream(st.w, pcapout.StreamOptions{Format: st.req.format, Application: "dpcap sinkd (live)", FlushSize: flushSize})
	if err := st.s.Begin(layers.LinkTypeEthernet, uint32(st.req.snap)); err != nil {
		return writeReason(err), err
	}
	if err := st.flush(); err != nil {
		return writeReason(err), err
	}
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		var closed bool
		st.taken, closed = st.v.take(st.taken[:0])
		done, err := st.write(st.taken)
		switch {
		case err != nil:
			return writeReason(err), err
		case done:
			return countReached, st.end()
		case closed:
			return sinkStopped, st.end()
		case len(st.taken) > 0 && !st.v.pending():
			if err := st.flush(); err != nil {
				return writeReason(err), err
			}
			pause.Reset(flushEvery)
			select {
			case <-pause.C:
			case <-ctx.Done():
				return clientGone, nil
			}
		}
		select {
		case <-st.v.wake:
		case <-tick.C:
			if st.countLost() || st.changed {
				if err := st.writeStats(); err != nil {
					return writeReason(err), err
				}
				if err := st.flush(); err != nil {
					return writeReason(err), err
				}
			}
		case <-ctx.Done():
			return clientGone, nil
		}
	}
}

// writeReason says why a write failed: it was blocked too long, or the
// viewer went away.
func writeReason(err error) reason {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return slowClient
	}
	return clientGone
}

// write encodes the batches and gives them back; done says count frames
// were sent.
func (st *streamer) write(batches []*batch) (done bool, err error) {
	var sent, filtered uint64
	for i, b := range batches {
		for _, f := range b.frames {
			if err != nil || done {
				break
			}
			data := b.bytes(f)
			iface := st.interfaceOf(b.engine, int(f.src))
			st.stats[iface].Received++
			if st.req.filter != nil && !st.req.filter.Match(data) {
				filtered++
				continue
			}
			if len(data) > st.req.snap {
				data = data[:st.req.snap]
			}
			if err = st.s.WritePacket(iface, time.Unix(0, f.ts), data, int(f.len)); err != nil {
				break
			}
			st.stats[iface].Accepted++
			sent++
			done = st.req.count > 0 && st.sent+sent >= st.req.count
		}
		st.v.recycle(b)
		batches[i] = nil
	}
	if sent+filtered > 0 {
		st.changed = true
	}
	st.sent += sent
	st.hub.stats.sent.Add(sent)
	st.hub.stats.filtered.Add(filtered)
	return done, err
}

// interfaceOf returns the interface of engine's source src, declaring it
// on first sight: one per name, as in the files, for every engine.
func (st *streamer) interfaceOf(engine, src int) int {
	for len(st.iface) <= engine {
		st.iface = append(st.iface, nil)
	}
	for len(st.iface[engine]) <= src {
		st.iface[engine] = append(st.iface[engine], -1)
	}
	if i := st.iface[engine][src]; i >= 0 {
		return i
	}
	ifc := st.hub.source(engine, src).Interface
	i, ok := st.ifaces[ifc.Name]
	if !ok {
		// A write error shows at the next write.
		i, _ = st.s.AddInterface(ifc, layers.LinkTypeEthernet, uint32(st.req.snap))
		st.ifaces[ifc.Name] = i
		st.stats = append(st.stats, pcapout.InterfaceStats{})
	}
	st.iface[engine][src] = i
	return i
}

// countLost adds the losses counted since the last call to the stats of
// their interfaces; it reports whether there were any.
func (st *streamer) countLost() bool {
	st.v.lostCounts(st.lostNow)
	more := false
	for id, n := range st.lostNow {
		d := n - st.lostSeen[id]
		if d == 0 {
			continue
		}
		st.lostSeen[id] = n
		i := st.interfaceOf(id.engine, id.src)
		st.stats[i].Received += d
		st.stats[i].Dropped += d
		st.lost += d
		more = true
	}
	return more
}

// writeStats writes every interface's statistics since the viewer came.
func (st *streamer) writeStats() error {
	st.changed = false
	now := time.Now()
	for i, s := range st.stats {
		if err := st.s.WriteStats(i, s, st.start, now); err != nil {
			return err
		}
	}
	return nil
}

// end ends a stream cleanly: the last statistics, then what is buffered.
func (st *streamer) end() error {
	st.countLost()
	if err := st.writeStats(); err != nil {
		return err
	}
	if err := st.s.Close(); err != nil {
		return err
	}
	return st.w.Flush()
}

// flush sends what the stream holds.
func (st *streamer) flush() error {
	if err := st.s.Flush(); err != nil {
		return err
	}
	return st.w.Flush()
}
