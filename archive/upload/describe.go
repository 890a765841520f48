package upload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/pcapout"
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
			m.Sources, m.Captures = interfaceNames(r)
			return m, err
		}
		if m.Packets == 0 {
			m.First = ci.Timestamp
		}
		m.Last = ci.Timestamp
		m.Packets++
	}
	m.Sources, m.Captures = interfaceNames(r)
	return m, nil
}

// interfaceNames returns the names of a pcapng file's interfaces, and the
// capture ids their descriptions end with, each once.
func interfaceNames(r *pcapfile.Reader) (names, captures []string) {
	for i := range r.NumInterfaces() {
		ifc, err := r.Interface(i)
		if err != nil {
			continue
		}
		if ifc.Name != "" {
			names = append(names, ifc.Name)
		}
		if c := pcapout.CaptureOf(ifc.Description); c != "" && !slices.Contains(captures, c) {
			captures = append(captures, c)
		}
	}
	return names, captures
}
