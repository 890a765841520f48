//go:build linux

package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/encapsock"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// kernelMirror mirrors a port inside the kernel: a tc program (TCX, the
// attach point of cls_bpf direct-action programs since Linux 6.6) on the
// port's ingress clones each matching frame to the egress of the
// underlay, where a second program pushes the 62-byte envelope in front of
// it. No frame crosses into user space; the links close with the process,
// so a dead daemon leaves no mirror behind.
type kernelMirror struct {
	port     Port
	conn     *net.UDPConn // holds the envelopes' source port
	sink     netip.AddrPort
	src      netip.AddrPort
	hop      nextHop
	logger   *slog.Logger
	counters *ebpf.Map
	config   *ebpf.Map // the envelope template
	progs    []*ebpf.Program
	links    []link.Link
	mu       sync.Mutex
	final    Stats // the counts at Stop, which Stats returns after it
	stop     chan struct{}
	done     chan struct{}
}

// refreshInterval is how often the next hop is looked up again: a
// neighbour's new MAC address reaches the envelopes within it.
const refreshInterval = time.Second

// magic tells one port's clones from everything else on the underlay
// (12 bits above the tag in skb->mark); each mirror takes the next.
var magic atomic.Uint32

func nextMark(tag uint32) (uint32, error) {
	if tag >= 1<<markShift {
		return 0, fmt.Errorf("tag %d does not fit the 20-bit flow label", tag)
	}
	m := magic.Add(1)%0xfff + 1 // never 0: a mark of 0 is everyone's
	return m<<markShift | tag, nil
}

func startKernel(ctx context.Context, port Port, cfg Config) (*kernelMirror, error) {
	if !cfg.Sink.Addr().Is6() || cfg.Sink.Addr().Is4In6() {
		return nil, unaddressable{errors.New("the kernel mirror sends to IPv6 sinks only")}
	}
	ifi, err := net.InterfaceByName(port.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", port.Interface, err)
	}
	// The socket the AF_PACKET mirror would send from: its source address
	// and port go in the template, and it keeps the port taken.
	conn, err := encapsock.Dial(ctx, encapsock.Config{Sink: cfg.Sink, SrcPort: cfg.SrcPort, Tag: port.Tag})
	if err != nil {
		return nil, err
	}
	m := &kernelMirror{port: port, conn: conn, sink: cfg.Sink, logger: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.attach(ifi, cfg); err != nil {
		close(m.done)
		m.Stop()
		return nil, err
	}
	go m.refresh()
	return m, nil
}

func (m *kernelMirror) attach(port *net.Interface, cfg Config) error {
	src := m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	m.src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	hop, err := lookupNextHop(m.sink.Addr())
	if errors.Is(err, errNoNeighbour) {
		m.probeNeighbour()
		hop, err = lookupNextHop(m.sink.Addr())
	}
	if err != nil {
		return err
	}
	m.hop = hop
	under, err := net.InterfaceByIndex(hop.ifindex)
	if err != nil {
		return fmt.Errorf("underlay interface %d: %w", hop.ifindex, err)
	}
	if under.Flags&net.FlagLoopback != 0 || len(hop.src) != 6 {
		return unaddressable{fmt.Errorf("the sink %s is not behind an Ethernet interface (%s)", m.sink.Addr(), under.Name)}
	}
	mark, err := nextMark(m.port.Tag)
	if err != nil {
		return err
	}
	if m.counters, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: numSlots}); err != nil {
		return fmt.Errorf("create the counters map: %w", err)
	}
	if m.config, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: cfgSize, MaxEntries: 1}); err != nil {
		return fmt.Errorf("create the envelope map: %w", err)
	}
	tmpl, err := m.template()
	if err != nil {
		return err
	}
	if err := m.config.Put(uint32(0), tmpl); err != nil {
		return fmt.Errorf("write the envelope map: %w", err)
	}
	// The largest frame whose envelope fits the underlay's MTU: the
	// kernel mirror cannot fragment.
	maxFrame := under.MTU - decap.IPv6HeaderLen - decap.UDPHeaderLen
	if err := m.load("dpcap_underlay", underlayProgram(port.Index, mark, maxFrame, m.config), under.Index, ebpf.AttachTCXEgress); err != nil {
		return fmt.Errorf("underlay %s: %w", under.Name, err)
	}
	ingress, err := portProgram(cfg.Filter, under.Index, mark, m.counters)
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if err := m.load("dpcap_port", ingress, port.Index, ebpf.AttachTCXIngress); err != nil {
		return fmt.Errorf("interface %s: %w", port.Name, err)
	}
	return nil
}

func (m *kernelMirror) load(name string, insns asm.Instructions, ifindex int, at ebpf.AttachType) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SchedCLS, Instructions: insns, License: "Dual MIT/GPL"})
	if err != nil {
		return fmt.Errorf("load the program: %w", err)
	}
	m.progs = append(m.progs, prog)
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		return fmt.Errorf("attach (tcx): %w", err)
	}
	m.links = append(m.links, l)
	return nil
}

// refresh follows the next hop's MAC address until Stop.
func (m *kernelMirror) refresh() {
	defer close(m.done)
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		hop, err := lookupNextHop(m.sink.Addr())
		if errors.Is(err, errNoNeighbour) {
			m.probeNeighbour()
			continue
		}
		// A route to another interface needs a new start.
		if err != nil || hop.ifindex != m.hop.ifindex || slices.Equal(hop.dst, m.hop.dst) {
			continue
		}
		m.hop = hop
		tmpl, err := m.template()
		if err == nil {
			err = m.config.Put(uint32(0), tmpl)
		}
		if err != nil {
			m.logger.Warn("kernel mirror: update the envelope", "port", m.port.Name, "err", err)
		}
	}
}

// template is the envelope the underlay program copies, padded to
// cfgSize; the program writes the flow label (the tag) and the lengths.
func (m *kernelMirror) template() ([]byte, error) {
	env, err := decap.Envelope{DstMAC: m.hop.dst, SrcMAC: m.hop.src, Src: m.src.Addr(), Dst: m.sink.Addr(),
		SrcPort: m.src.Port(), DstPort: m.sink.Port()}.Bytes()
	if err != nil {
		return nil, err
	}
	b := make([]byte, cfgSize)
	copy(b, env[:])
	return b, nil
}

// probeNeighbour makes the kernel resolve the sink's next hop (an ICMPv6
// echo to the sink), as a socket's first datagram would, and waits a
// round trip for it.
func (m *kernelMirror) probeNeighbour() {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", m.src.Addr().String())
	if err != nil {
		return
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: 0xdc, Seq: 1, Data: []byte("dpcap neighbour probe")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return
	}
	_, _ = c.WriteTo(b, &net.IPAddr{IP: m.sink.Addr().AsSlice()})
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _, _ = c.ReadFrom(make([]byte, 128))
}

// Stats implements Mirror; after Stop, it returns the final counts.
func (m *kernelMirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counters == nil {
		return m.final
	}
	return m.count()
}

func (m *kernelMirror) count() Stats {
	var c [numSlots]uint64
	for slot := range c {
		var perCPU []uint64
		if m.counters.Lookup(uint32(slot), &perCPU) == nil {
			for _, v := range perCPU {
				c[slot] += v
			}
		}
	}
	return Stats{Mirrored: c[slotMirrored], Failed: c[slotFailed]}
}

// Port implements Mirror.
func (m *kernelMirror) Port() Port { return m.port }

// Method implements Mirror.
func (m *kernelMirror) Method() string { return MethodBPF }

// Stop implements Mirror: detach, then release everything.
func (m *kernelMirror) Stop() {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.links) - 1; i >= 0; i-- {
		m.links[i].Close()
	}
	if m.counters != nil {
		m.final = m.count()
	}
	for _, p := range m.progs {
		p.Close()
	}
	for _, mp := range []*ebpf.Map{m.counters, m.config} {
		if mp != nil {
			mp.Close()
		}
	}
	m.conn.Close()
	m.links, m.progs, m.counters, m.config = nil, nil, nil, nil
}
