package upload

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
)

// describe reads a capture file for what its sidecar would have said: its
// format, packets, first and last packet time and, for pcapng, the names
// of its interfaces.
func describe(name string) (archive.Meta, error) {
	m := archive.Meta{Format: "pcap"}
	f, err := os.Open(name)
	if err != nil {
		return m, err
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		return m, fmt.Errorf("%s: %w", name, err)
	}
	if r.Pcapng() {
		m.Format = "pcapng"
	}
	for {
		_, ci, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			err = fmt.Errorf("%s: after %d packets: %w", name, m.Packets, err)
			m.Sources = interfaceNames(r)
			return m, err
		}
		if m.Packets == 0 {
			m.First = ci.Timestamp
		}
		m.Last = ci.Timestamp
		m.Packets++
	}
	m.Sources = interfaceNames(r)
	return m, nil
}

func interfaceNames(r *pcapfile.Reader) []string {
	var names []string
	for i := range r.NumInterfaces() {
		if ifc, err := r.Interface(i); err == nil && ifc.Name != "" {
			names = append(names, ifc.Name)
		}
	}
	return names
}
