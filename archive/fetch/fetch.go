// Package fetch gets a port's packets of a time window back from the
// capture files of one or many sinks (dpcap fetch): in an S3-compatible
// store (package archive's layout) or in local directories. It finds the
// files whose time range and sources match, streams them, keeps the
// port's frames in the window and merges them in timestamp order into one
// capture, pcapng interfaces kept and renumbered.
package fetch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Query selects packets.
type Query struct {
	// Ports are source names (pcapng interface names: the port map's
	// names); empty keeps every source.
	Ports []string
	// From (inclusive) and To (exclusive) bound the packets' time; zero
	// leaves that side open.
	From, To time.Time
	// Capture, when set, keeps only the copies of that dpcap capture: of
	// pcapng interfaces whose description names it, and of pcap files
	// of one source (--split-by) whose metadata lists it alone.
	Capture string
}

// overlaps reports whether f's time range meets q's window.
func (q Query) overlaps(f File) bool {
	if !q.To.IsZero() && !f.First.Before(q.To) {
		return false
	}
	return q.From.IsZero() || f.Last.IsZero() || !f.Last.Before(q.From)
}

// Config configures Run.
type Config struct {
	Sources []Source
	Query   Query
	Output  io.Writer
	// Pcap writes pcap instead of pcapng: one link type, no interfaces.
	Pcap bool
	// Progress, when set, is updated as Run goes.
	Progress *Progress
}

// Progress are running counts, safe to read while Run works.
type Progress struct {
	Files       atomic.Int64 // files to read
	FilesDone   atomic.Int64
	Bytes       atomic.Int64 // bytes read from files
	PacketsRead atomic.Uint64
	PacketsKept atomic.Uint64
}

// Summary says what Run did.
type Summary struct {
	// Listed files were in the window; Skipped were not capture files
	// or not named as the layout names them.
	Listed, Skipped int
	// Read files were in the window and may hold the ports.
	Read int
	// Unfilterable are pcap files skipped because they may hold several
	// sources, which pcap does not tell apart: only pcapng (or
	// --split-by source) files can be filtered by port.
	Unfilterable []string
	// Damaged files ended in a broken record; their packets up to it
	// are used.
	Damaged []string
	// Gone are files removed since they were listed (a bucket's
	// lifecycle rule, a -W ring, --keep).
	Gone        []string
	Bytes       int64
	PacketsRead uint64
	PacketsKept uint64
	// First and Last are the times of the first and last packet kept.
	First, Last time.Time
	// Interfaces are the output's interfaces, in order.
	Interfaces []string
	// Seen are the ports the query left out: interfaces with packets
	// in the window, and sources of files left unread, sorted; at most
	// maxSeen.
	Seen []string
}

// maxSeen bounds Summary.Seen: a planted file may name any number.
const maxSeen = 256

// damaged notes a file that ended in a broken record.
func (s *Summary) damaged(name string, err error) {
	s.Damaged = append(s.Damaged, fmt.Sprintf("%s: %v", name, err))
}

// Run lists the sources, then merges the matching packets into Output.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	var sum Summary
	prog := cfg.Progress
	if prog == nil {
		prog = &Progress{}
	}
	var files []File
	seen := map[string]bool{}
	for _, src := range cfg.Sources {
		fs, skipped, err := src.List(ctx, cfg.Query)
		if err != nil {
			return sum, err
		}
		sum.Listed += len(fs)
		sum.Skipped += skipped
		for _, f := range fs {
			if f.matches(cfg.Query) {
				files = append(files, f)
				continue
			}
			for _, s := range f.Sources {
				see(seen, s)
			}
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].First.Before(files[j].First) })
	sum.Read = len(files)
	prog.Files.Store(int64(len(files)))

	out := newWriter(cfg.Output, cfg.Pcap)
	m := &merge{ctx: ctx, q: cfg.Query, out: out, prog: prog, ifaces: map[ifaceKey]int{}, seen: seen}
	err := m.run(ctx, files, &sum)
	for _, c := range m.h {
		c.close()
	}
	if cerr := out.close(); err == nil {
		err = cerr
	}
	sum.Bytes = prog.Bytes.Load()
	sum.PacketsRead, sum.PacketsKept = prog.PacketsRead.Load(), prog.PacketsKept.Load()
	sum.Interfaces = m.names
	for s := range seen {
		sum.Seen = append(sum.Seen, s)
	}
	slices.Sort(sum.Seen)
	return sum, err
}

// see adds a port the query left out to seen, up to maxSeen.
func see(seen map[string]bool, port string) {
	if len(seen) < maxSeen {
		seen[port] = true
	}
}

// ifaceKey identifies an output interface: inputs that agree on all of it
// share one.
type ifaceKey struct {
	name, desc string
	link       layers.LinkType
	snap       uint32
}

type merge struct {
	ctx    context.Context
	q      Query
	out    *writer
	prog   *Progress
	h      cursors
	seq    int
	ifaces map[ifaceKey]int
	names  []string
	seen   map[string]bool
}

func (m *merge) run(ctx context.Context, files []File, sum *Summary) error {
	next, n := 0, 0
	for {
		// Open a file once the merge reaches its first packet's time:
		// only files whose ranges overlap are open at once.
		for next < len(files) && (len(m.h) == 0 || !files[next].First.After(m.h[0].ci.Timestamp)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, err := m.open(ctx, files[next], sum)
			next++
			if err != nil {
				return err
			}
			if c == nil {
				continue
			}
			if m.advance(c, sum) {
				heap.Push(&m.h, c)
			}
		}
		if len(m.h) == 0 {
			return ctx.Err()
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c := m.h[0]
		ci := c.ci
		ci.InterfaceIndex = c.outIface
		if err := m.out.write(ci, c.data); err != nil {
			return err
		}
		if m.prog.PacketsKept.Add(1) == 1 {
			sum.First = ci.Timestamp
		}
		sum.Last = ci.Timestamp
		if m.advance(c, sum) {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
	}
}

// cursor reads one file.
type cursor struct {
	f    File
	rc   io.ReadCloser
	r    *pcapfile.Reader
	seq  int
	data []byte
	ci   gopacket.CaptureInfo
	// outIface is the output interface of the packet in hand.
	outIface int
	// ng maps the file's interfaces to output interfaces, -1 for one
	// the query leaves out.
	ng map[int]int
	// pcapIface is the output interface of a pcap file's packets.
	pcapIface int
	prog      *Progress
}

func (c *cursor) close() {
	if c.rc != nil {
		c.rc.Close()
		c.rc = nil
		c.prog.FilesDone.Add(1)
	}
}

// counter counts the bytes read from a file, and stops reading when ctx
// ends: a local file does not see ctx otherwise.
type counter struct {
	io.ReadCloser
	ctx context.Context
	n   *atomic.Int64
}

func (c counter) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// open starts reading f; it returns nil for a file the query cannot use.
func (m *merge) open(ctx context.Context, f File, sum *Summary) (*cursor, error) {
	rc, err := f.open(ctx)
	if err != nil && ctx.Err() == nil && gone(err) {
		m.prog.FilesDone.Add(1)
		sum.Gone = append(sum.Gone, f.Name)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.Name, err)
	}
	rc = counter{rc, ctx, &m.prog.Bytes}
	r, err := pcapfile.NewReader(rc) // gzip-compressed or not (sinkd -z gzip)
	if err != nil && ctx.Err() != nil {
		rc.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		rc.Close()
		m.prog.FilesDone.Add(1)
		sum.damaged(f.Name, err)
		return nil, nil
	}
	m.seq++
	c := &cursor{f: f, rc: rc, r: r, seq: m.seq, ng: map[int]int{}, pcapIface: -1, prog: m.prog}
	if !r.Pcapng() {
		name, ok := "", len(m.q.Ports) == 0
		if len(f.Sources) == 1 {
			name = f.Sources[0]
			ok = ok || slices.Contains(m.q.Ports, name) && !f.Partial
		}
		// A pcap file says nothing of its packets' capture: only its
		// metadata, for one source, can.
		ok = ok && (m.q.Capture == "" || len(f.Sources) == 1 && slices.Equal(f.Captures, []string{m.q.Capture}))
		if !ok {
			c.close()
			sum.Unfilterable = append(sum.Unfilterable, f.Name)
			return nil, nil
		}
		desc := "pcap file"
		if f.Sink != "" {
			desc = "captured by sink " + f.Sink
		}
		if c.pcapIface, err = m.iface(ifaceKey{name: name, desc: desc, link: r.LinkType()}); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// iface returns the output interface for k, adding it on first use.
func (m *merge) iface(k ifaceKey) (int, error) {
	if i, ok := m.ifaces[k]; ok {
		return i, nil
	}
	if len(m.names) >= pcapfile.MaxInterfaces {
		return 0, fmt.Errorf("interface %q would be the output's %dth: at most %d", k.name, len(m.names)+1, pcapfile.MaxInterfaces)
	}
	i, err := m.out.addInterface(k)
	if err != nil {
		return 0, err
	}
	m.ifaces[k] = i
	m.names = append(m.names, k.name)
	return i, nil
}

// advance reads c's next packet of the query; false at the end of what c
// can give.
func (m *merge) advance(c *cursor, sum *Summary) bool {
	for {
		data, ci, lt, err := c.r.ReadPacket()
		if err != nil {
			// An interrupted read is no damage: the run ends with
			// ctx's error.
			if !errors.Is(err, io.EOF) && m.ctx.Err() == nil {
				sum.damaged(c.f.Name, err)
			}
			c.close()
			return false
		}
		m.prog.PacketsRead.Add(1)
		// Packets are in arrival order, not time order: a clock that
		// stepped or copies that came reordered put in-window packets
		// after a later one, and nothing in a file bounds what follows
		// a packet. Each file is read to its end.
		if !m.q.To.IsZero() && !ci.Timestamp.Before(m.q.To) || ci.Timestamp.Before(m.q.From) {
			continue
		}
		out := c.pcapIface
		if c.r.Pcapng() {
			var ok bool
			if out, ok = c.ng[ci.InterfaceIndex]; !ok {
				if out, err = m.mapInterface(c, ci.InterfaceIndex, lt); err != nil {
					sum.damaged(c.f.Name, err)
					c.close()
					return false
				}
				c.ng[ci.InterfaceIndex] = out
			}
		}
		if out < 0 {
			continue
		}
		c.data, c.ci, c.outIface = data, ci, out
		return true
	}
}

// mapInterface gives a pcapng file's interface its output interface, or
// -1 when the query leaves its packets out.
func (m *merge) mapInterface(c *cursor, idx int, lt layers.LinkType) (int, error) {
	ifc, err := c.r.Interface(idx)
	if err != nil {
		return -1, err
	}
	if len(m.q.Ports) > 0 && !slices.Contains(m.q.Ports, ifc.Name) {
		see(m.seen, ifc.Name)
		return -1, nil
	}
	if m.q.Capture != "" && pcapout.CaptureOf(ifc.Description) != m.q.Capture {
		return -1, nil
	}
	return m.iface(ifaceKey{name: ifc.Name, desc: ifc.Description, link: lt, snap: ifc.SnapLength})
}

// cursors is a heap of cursors by the time of the packet in hand; files
// opened earlier win ties, keeping the order stable.
type cursors []*cursor

func (h cursors) Len() int { return len(h) }
func (h cursors) Less(i, j int) bool {
	if !h[i].ci.Timestamp.Equal(h[j].ci.Timestamp) {
		return h[i].ci.Timestamp.Before(h[j].ci.Timestamp)
	}
	return h[i].seq < h[j].seq
}
func (h cursors) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
