// Package udpstat reads the kernel's UDP error counters of the network
// namespace sinkd runs in (/proc/net/snmp and /proc/net/snmp6) and notices
// the silent sink: datagrams the kernel discards before any socket sees
// them (a NIC that leaves the envelope's length fields unset, a bad
// checksum) while sinkd's socket receives nothing.
package udpstat

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultProcNet is the calling process's network namespace's /proc/net.
const DefaultProcNet = "/proc/net"

// Names are the counters Read returns, in its order: IPv4's from
// /proc/net/snmp (its Udp line), IPv6's from /proc/net/snmp6.
var Names = []string{
	"UdpInErrors", "UdpInCsumErrors", "UdpRcvbufErrors",
	"Udp6InErrors", "Udp6InCsumErrors", "Udp6RcvbufErrors",
}

// Counters holds one value per name in Names.
type Counters [6]uint64

// Read reads the counters from procNet (DefaultProcNet, or a copy for
// tests). A kernel without IPv6 leaves its counters at zero.
func Read(procNet string) (Counters, error) {
	var c Counters
	v4, err := readSNMP(filepath.Join(procNet, "snmp"))
	if err != nil {
		return c, err
	}
	v6, err := readSNMP6(filepath.Join(procNet, "snmp6"))
	if err != nil && !os.IsNotExist(err) {
		return c, err
	}
	for i, name := range Names {
		if strings.HasPrefix(name, "Udp6") {
			c[i] = v6[name]
		} else {
			c[i] = v4[strings.TrimPrefix(name, "Udp")]
		}
	}
	return c, nil
}

// readSNMP parses /proc/net/snmp's "Udp:" header and value lines.
func readSNMP(name string) (map[string]uint64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read UDP counters: %w", err)
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if header == nil {
			header = fields[1:]
			continue
		}
		m := map[string]uint64{}
		for i, v := range fields[1:] {
			if i < len(header) {
				m[header[i]], _ = strconv.ParseUint(v, 10, 64)
			}
		}
		return m, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read UDP counters: %s: %w", name, err)
	}
	return nil, fmt.Errorf("read UDP counters: %s has no Udp line", name)
}

// readSNMP6 parses /proc/net/snmp6's "Name value" lines.
func readSNMP6(name string) (map[string]uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "Udp6") {
			m[f[0]], _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	return m, nil
}

// Watch reads the counters every interval until ctx is done. The first
// time they rise over two intervals in a row in which received (sinkd's
// count of packets read) does not, it logs the likely cause and the fix, once: a
// newcomer must not stare at an empty capture without a reason.
func Watch(ctx context.Context, procNet string, interval time.Duration, received func() uint64, logger *slog.Logger) {
	last, err := Read(procNet)
	if err != nil {
		logger.Warn("cannot watch the kernel's UDP error counters", "err", err)
		return
	}
	lastRx := received()
	strikes := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := Read(procNet)
		if err != nil {
			continue
		}
		rx := received()
		// Two intervals in a row, so that errors of other sockets meeting
		// a pause in the traffic are not taken for the silent sink.
		rose := rises(last, now)
		if len(rose) == 0 || rx != lastRx {
			strikes = 0
		} else if strikes++; strikes == 2 {
			logger.Warn("the kernel discarded UDP datagrams while sinkd received none; if they are the NIC's envelopes, "+
				"their length fields are probably unset and no socket can receive them: "+
				"capture them on the interface instead with 'sinkd -i IFACE'", rose...)
			return
		}
		last, lastRx = now, rx
	}
}

// rises returns the counters that grew from a to b, as log attributes.
func rises(a, b Counters) []any {
	var attrs []any
	for i := range a {
		if b[i] > a[i] {
			attrs = append(attrs, Names[i], b[i]-a[i])
		}
	}
	return attrs
}
