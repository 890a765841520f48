package upload

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// writeCapture writes n packets of 100 bytes with pcapout and returns the
// file's bytes and the offset where each packet's record ends.
func writeCapture(t *testing.T, format pcapout.Format, n int) ([]byte, []int) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "cap")
	r, err := pcapout.Open(pcapout.Options{Path: name, Format: format, LinkType: layers.LinkTypeEthernet, FlushBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	iface := r.AddInterface(pcapout.Interface{Name: "vm-1"})
	r.Flush()
	var ends []int
	for i := range n {
		r.WritePacket(iface, time.Unix(1700000000, int64(i)), make([]byte, 100), 100)
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int(fi.Size()))
	}
	// Killed here: no statistics at the end.
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b, ends
}

// TestRepair cuts a file killed in the middle of a record back to its
// last whole packet, in both formats, and leaves whole files and files
// that are not captures as they are.
func TestRepair(t *testing.T) {
	for _, format := range []pcapout.Format{pcapout.FormatPcap, pcapout.FormatPcapng} {
		whole, ends := writeCapture(t, format, 3)
		tests := []struct {
			name    string
			content []byte
			packets int // -1: not a capture, left alone
		}{
			{"whole", whole, 3},
			{"cut in a record's header", whole[:ends[1]+5], 2},
			{"cut in a record's data", whole[:ends[2]-7], 2},
			{"cut before its last length", whole[:ends[2]-4], 2},
			{"no packet", whole[:ends[0]-1], 0},
			{"a zeroed tail", append(append([]byte{}, whole...), make([]byte, 64)...), 3},
			{"not a capture", []byte("hello, world: not a capture file"), -1},
			{"half a header", whole[:10], -1},
		}
		for _, tt := range tests {
			t.Run(format.String()+"/"+tt.name, func(t *testing.T) {
				name := filepath.Join(t.TempDir(), "f")
				if err := os.WriteFile(name, tt.content, 0o640); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(name, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				cut, err := repair(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(name)
				if tt.packets < 0 {
					if string(got) != string(tt.content) || cut != 0 {
						t.Fatalf("changed: cut %d", cut)
					}
					return
				}
				if int(cut) != len(tt.content)-len(got) {
					t.Errorf("says it cut %d bytes, cut %d", cut, len(tt.content)-len(got))
				}
				pkts, _, err := pcapfile.ReadFile(name)
				if err != nil || len(pkts) != tt.packets {
					t.Errorf("reads %d packets (%v), want %d", len(pkts), err, tt.packets)
				}
			})
		}
	}
}
