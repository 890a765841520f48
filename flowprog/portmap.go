package flowprog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// The envelope carries no port identity, so dpcap builds one template per
// captured port and puts a tag in the IPv6 flow label, which the NIC copies
// verbatim: tags 1 to N for the N captured ports, in the order given; 0
// means untagged. dpcap publishes the tags as a PortMap; sinkd reads it
// (--port-map) to name the ports in its pcapng interfaces.

// PortTag names one tagged port.
type PortTag struct {
	// Source is the hypervisor's underlay address (the envelopes' source);
	// the zero Addr matches any hypervisor.
	Source netip.Addr `json:"source"`
	Tag    uint32     `json:"tag"`
	Name   string     `json:"name"`
}

// PortMap is the published tag map, as JSON:
//
//	{"ports": [{"source": "2001:db8::10", "tag": 1, "name": "vm-1"}, …]}
type PortMap struct {
	Ports []PortTag `json:"ports"`
}

// AssignTags gives the ports tags 1..N in order, from source.
func AssignTags(source netip.Addr, names []string) PortMap {
	m := PortMap{Ports: make([]PortTag, len(names))}
	for i, n := range names {
		m.Ports[i] = PortTag{Source: source, Tag: uint32(i + 1), Name: n}
	}
	return m
}

// Validate checks tags are in range and unique per source, and names set.
func (m PortMap) Validate() error {
	type key struct {
		src netip.Addr
		tag uint32
	}
	seen := map[key]string{}
	for _, p := range m.Ports {
		switch {
		case p.Tag == 0 || p.Tag > MaxFlowLabel:
			return fmt.Errorf("port %q: tag %d is not in 1-%d", p.Name, p.Tag, MaxFlowLabel)
		case p.Name == "":
			return fmt.Errorf("tag %d has no name", p.Tag)
		}
		k := key{p.Source, p.Tag}
		if other, dup := seen[k]; dup {
			return fmt.Errorf("tag %d of %v names both %q and %q", p.Tag, p.Source, other, p.Name)
		}
		seen[k] = p.Name
	}
	return nil
}

// Lookup returns the name of tag from src: an entry for src itself, else
// one for any source.
func (m PortMap) Lookup(src netip.Addr, tag uint32) (string, bool) {
	if tag == 0 {
		return "", false
	}
	var any string
	for _, p := range m.Ports {
		if p.Tag != tag {
			continue
		}
		if p.Source == src {
			return p.Name, true
		}
		if !p.Source.IsValid() {
			any = p.Name
		}
	}
	return any, any != ""
}

// LoadPortMap reads and validates a port map file.
func LoadPortMap(path string) (PortMap, error) {
	var m PortMap
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("read port map: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("port map %s: %w", path, err)
	}
	if len(m.Ports) == 0 {
		return m, fmt.Errorf("port map %s: %w", path, errors.New("no ports"))
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("port map %s: %w", path, err)
	}
	return m, nil
}
