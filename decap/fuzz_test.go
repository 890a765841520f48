package decap

import (
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket/layers"
)

// FuzzDecode feeds arbitrary frames of every link type to the decoder. The
// seed corpus is the real captures in testdata and the built envelopes.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../testdata/envelopes/*.pcap")
	for _, name := range files {
		pkts, lt, err := pcapfile.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range pkts {
			f.Add(uint16(lt), p.Data)
		}
	}
	for _, e := range envelopes(f) {
		f.Add(uint16(layers.LinkTypeEthernet), e.frame)
	}
	f.Fuzz(func(t *testing.T, lt uint16, frame []byte) {
		var r Result
		for _, length := range []int{len(frame), len(frame) + 100} {
			reason := decoder.Decode(layers.LinkType(lt), frame, length, &r)
			if reason >= NumReasons {
				t.Fatalf("reason %d out of range", reason)
			}
			if reason != OK {
				continue
			}
			if len(r.Inner) > 0 {
				start := uintptr(unsafe.Pointer(&r.Inner[0])) - uintptr(unsafe.Pointer(&frame[0]))
				if start+uintptr(len(r.Inner)) > uintptr(len(frame)) {
					t.Fatalf("inner frame [%d:%d] lies outside the %d-byte input", start, start+uintptr(len(r.Inner)), len(frame))
				}
			}
			if r.InnerLength < len(r.Inner) || r.Kind == KindNone || r.Kind.String() == "unknown" {
				t.Fatalf("inner %d bytes of %d, kind %v", len(r.Inner), r.InnerLength, r.Kind)
			}
			if r.InnerEtherType == 0 && len(r.Inner) < EtherHeaderLen {
				t.Fatalf("accepted a %d-byte Ethernet frame (%d bytes captured)", r.InnerLength, len(r.Inner))
			}
			if r.InnerEtherType != 0 && (r.InnerEtherType < 0x0600 || len(r.Inner) == 0) {
				t.Fatalf("accepted a bare packet of EtherType %#x, %d bytes captured", r.InnerEtherType, len(r.Inner))
			}
		}
	})
}

// FuzzDecodePayload feeds arbitrary UDP payloads of every kind.
func FuzzDecodePayload(f *testing.F) {
	for _, e := range envelopes(f) {
		var r Result
		if decoder.Decode(layers.LinkTypeEthernet, e.frame, len(e.frame), &r) == OK && r.Kind.UDP() {
			off := len(e.frame) - len(r.Inner)
			f.Add(uint8(r.Kind), e.frame[off-8:]) // the kind's header and the frame
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		var r Result
		reason := DecodePayload(Kind(kind%uint8(len(Kinds())+1)), payload, len(payload), &r)
		if reason == OK && (r.InnerLength < len(r.Inner) || len(r.Inner) > len(payload)) {
			t.Fatalf("inner %d bytes of %d from a %d-byte payload", len(r.Inner), r.InnerLength, len(payload))
		}
	})
}
