package afpacket

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/decap"
	"golang.org/x/net/bpf"
)

func vm(t *testing.T, ports []uint16) *bpf.VM {
	t.Helper()
	raw, err := Filter(ports, false)
	if err != nil {
		t.Fatal(err)
	}
	insts, _ := bpf.Disassemble(raw)
	v, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func frames(t *testing.T, glob string) [][]byte {
	t.Helper()
	names, _ := filepath.Glob(glob)
	var out [][]byte
	for _, name := range names {
		pkts, lt, err := pcapfile.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if lt != 1 { // the kernel filter sees Ethernet frames
			continue
		}
		for _, p := range pkts {
			out = append(out, p.Data)
		}
	}
	return out
}

// variants derives frames the captures lack: IPv4 fragments, IPv6
// extension headers and fragments, GRE, and envelopes on other ports.
func variants(t *testing.T, envs [][]byte) [][]byte {
	var out [][]byte
	for _, f := range envs {
		switch binary.BigEndian.Uint16(f[12:14]) {
		case 0x0800:
			frag := slices.Clone(f)
			frag[20] |= 0x20 // more fragments
			gre := slices.Clone(f)
			gre[23] = 47
			out = append(out, frag, gre)
		case 0x86DD:
			// Insert a destination options header before UDP.
			ext := slices.Concat(f[:54], []byte{17, 0, 1, 4, 0, 0, 0, 0}, f[54:])
			ext[20] = 60
			frag := slices.Concat(f[:54], []byte{17, 0, 0, 1, 0, 0, 0, 9}, f[54:])
			frag[20] = 44
			gre := slices.Clone(f)
			gre[20] = 47
			out = append(out, ext, frag, gre)
		}
	}
	return out
}

// TestFilterNeverRejectsAnEnvelope runs the kernel filter in x/net/bpf's
// VM: every frame the decoder takes (or counts as a broken envelope) must
// pass, and the VM traffic that is not enveloped must not.
func TestFilterNeverRejectsAnEnvelope(t *testing.T) {
	ports := decap.DefaultPorts()
	filter := vm(t, decap.UDPPorts(ports))
	d := decap.NewDecoder(ports)
	envs := frames(t, "../../testdata/envelopes/*.pcap")
	all := append(slices.Clone(envs), variants(t, envs)...)
	passed := 0
	for i, f := range all {
		var r decap.Result
		reason := d.Decode(1, f, len(f), &r)
		n, err := filter.Run(f)
		if err != nil {
			t.Fatal(err)
		}
		if (reason == decap.OK || reason.Malformed()) && n == 0 {
			t.Errorf("frame %d (%v, %d bytes) is an envelope the filter rejects", i, reason, len(f))
		}
		if n > 0 {
			passed++
		}
	}
	if passed < len(envs) {
		t.Errorf("only %d of %d frames passed", passed, len(all))
	}
	rejected := 0
	for i, f := range frames(t, "../../testdata/vm-traffic.pcap") {
		n, _ := filter.Run(f)
		if n == 0 {
			rejected++
			continue
		}
		// IPv6 with extension headers (here: MLD behind hop-by-hop) goes up
		// for the decoder to walk; nothing else may.
		if binary.BigEndian.Uint16(f[12:14]) != 0x86DD || !slices.Contains([]byte{0, 43, 44, 51, 60}, f[20]) {
			t.Errorf("ordinary frame %d (ethertype %#x) passed the filter", i, binary.BigEndian.Uint16(f[12:14]))
		}
	}
	if rejected < 60 {
		t.Errorf("the filter kept only %d of 74 ordinary frames from user space", rejected)
	}
}

func TestFilterFollowsPorts(t *testing.T) {
	envs := frames(t, "../../testdata/envelopes/nic-ether.pcap")
	filter := vm(t, []uint16{4789})
	for i, f := range envs {
		if n, _ := filter.Run(f); n != 0 {
			t.Errorf("envelope %d to port 3010 passed a filter for 4789 only", i)
		}
	}
	filter = vm(t, []uint16{1, 3010, 9, 4789, 3010})
	for i, f := range envs {
		if n, _ := filter.Run(f); n == 0 {
			t.Errorf("envelope %d rejected by a filter listing 3010", i)
		}
	}
}
