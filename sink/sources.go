package sink

import (
	"fmt"
	"net/netip"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
)

// DefaultMaxSources bounds the sources (interfaces, or files with
// --split-by) one capture declares. Anyone who reaches the sink port can
// vary the flow label (20 bits) or the sender; each source costs a file
// descriptor and a write buffer with --split-by, and an interface block in
// every pcapng file.
const DefaultMaxSources = 256

// sourceKey identifies where envelopes come from: the sender, the kind of
// envelope and its identifier (a port's tag, a VNI, a session), and the
// port of the map the copy came from (for a PF copy towards a VF, that VF
// too), by name: a map read again keeps the interfaces of its names, in
// the same capture.
type sourceKey struct {
	addr     netip.Addr
	kind     decap.Kind
	id       uint32
	port, to string
	// capture is the port's capture id: a new capture of a port is a
	// source of its own, so that its copies never carry another's id.
	capture string
}

// sources numbers the sources seen, at most max of them; the sources past
// that share one overflow source. Each has an interface of the output
// (with Config.PerSource; interface 0 otherwise) and is declared to the
// tap. Only the engine's goroutine uses it.
type sources struct {
	index    map[sourceKey]int
	iface    []int               // the output interface of each source
	ports    *portmap.Identifier // nil without a port map
	frame    decap.Frame         // the inner frame's headers, parsed once for ports
	max      int
	overflow int // the overflow source, -1 until needed
}

// lookup returns r's source, whose inner Ethernet frame is frame,
// declaring it on first sight. It counts copies whose tag the port map
// does not list, and those past the bound.
func (s *sources) lookup(r *decap.Result, frame []byte, e *Engine) int {
	k := sourceKey{addr: r.Src, kind: r.Kind, id: r.ID}
	if s.ports != nil && r.Kind == decap.KindNIC {
		decap.ParseFrame(frame, &s.frame)
		m, tagged := s.ports.Identify(r.Src, r.ID, &s.frame)
		k.port, k.to = s.ports.Names(m)
		k.capture = s.ports.Capture(m)
		if r.ID != 0 && !tagged {
			// Only the map's tags are taken: an unknown one names no port
			// and joins the sender's untagged copies instead of making a
			// source.
			e.acc.UnknownTags++
			k.id = 0
		}
	}
	if i, ok := s.index[k]; ok {
		return i
	}
	if len(s.index) >= s.max {
		e.acc.Overflowed++
		if s.overflow < 0 {
			s.overflow = s.declare(e, SourceInfo{Interface: pcapout.Interface{Name: "overflow",
				Description: fmt.Sprintf("copies of every source past the first %d (--max-sources)", s.max)}})
			e.cfg.Logger.Warn("too many sources: copies of new ones go to the overflow interface",
				"max_sources", s.max, "first", e.describe(k, r.DstPort).Name)
		}
		return s.overflow
	}
	i := s.declare(e, SourceInfo{Interface: e.describe(k, r.DstPort), Port: k.port, To: k.to})
	s.index[k] = i
	e.acc.Sources++
	return i
}

// declare numbers a new source and declares it to the output, when each
// source has an interface there, and to the tap.
func (s *sources) declare(e *Engine, si SourceInfo) int {
	iface := 0
	if e.cfg.PerSource {
		iface = e.cfg.Output.AddInterface(si.Interface)
	}
	s.iface = append(s.iface, iface)
	i := len(s.iface) - 1
	if e.cfg.Tap != nil {
		e.cfg.Tap.Source(i, si)
	}
	return i
}

// describe names a source: by the port map, else by its sender and
// identifier.
func (e *Engine) describe(k sourceKey, port uint16) pcapout.Interface {
	name := k.addr.String()
	idLabel := k.kind.Descriptor().IDLabel
	if idLabel == "" {
		idLabel = "id"
	}
	if k.id != 0 {
		name = fmt.Sprintf("%s %s %d", k.addr, idLabel, k.id)
	}
	if k.port != "" {
		name = portmap.JoinNames(k.port, k.to)
	}
	desc := fmt.Sprintf("%s envelopes from %s", k.kind, k.addr)
	if k.id != 0 {
		desc += fmt.Sprintf(", %s %d", idLabel, k.id)
	}
	if k.kind.UDP() {
		desc += fmt.Sprintf(", to UDP port %d", port)
	}
	return pcapout.Interface{Name: name, Description: desc, Capture: k.capture}
}
