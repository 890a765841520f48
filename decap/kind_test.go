package decap

import (
	"strings"
	"testing"
)

// TestEveryKindDescribed fails when a kind is half-registered: a built-in
// constant without a complete descriptor, a kind no test envelope
// exercises, or a reason without a label.
func TestEveryKindDescribed(t *testing.T) {
	t.Parallel()
	if n := len(Kinds()); n < int(numBuiltin)-1 {
		t.Fatalf("%d kinds registered, %d built in", n, numBuiltin-1)
	}
	seen := map[Kind]bool{}
	for _, e := range envelopes(t) {
		seen[e.kind] = true
	}
	for k := KindNone + 1; k < numBuiltin; k++ {
		d := k.Descriptor()
		if err := check(d, nil); err != nil {
			t.Errorf("kind %d: %v", k, err)
		}
		if k.String() != d.Name || d.Name == "unknown" {
			t.Errorf("kind %d is named %q, its descriptor %q", k, k.String(), d.Name)
		}
		if !seen[k] {
			t.Errorf("kind %v: no test envelope decodes to it", k)
		}
	}
	for r := range NumReasons {
		if reasons[r].name == "" {
			t.Errorf("reason %d has no label", r)
		}
	}
}

// TestRegisterRefusesHalfDescriptors checks Register takes only complete
// descriptors that clash with no registered kind.
func TestRegisterRefusesHalfDescriptors(t *testing.T) {
	t.Parallel()
	decode := func([]byte, GREHeader, *Result) Reason { return OK }
	for _, tt := range []struct {
		d    Descriptor
		want string
	}{
		{Descriptor{Transport: UDP, Port: 1, Decode: decode}, "invalid name"},
		{Descriptor{Name: "Big", Transport: UDP, Decode: decode}, "invalid name"},
		{Descriptor{Name: "a=b", Transport: UDP, Decode: decode}, "invalid name"},
		{Descriptor{Name: "nodecoder", Transport: UDP, Port: 1}, "no decoder"},
		{Descriptor{Name: "notransport", Decode: decode}, "unknown transport"},
		{Descriptor{Name: "greport", Transport: GRE, Port: 1, GREProtocol: 0x1234, Decode: decode}, "GRE protocol type and no port"},
		{Descriptor{Name: "greproto", Transport: GRE, Decode: decode}, "GRE protocol type and no port"},
		{Descriptor{Name: "udpgre", Transport: UDP, GREProtocol: 0x1234, Decode: decode}, "UDP kind with a GRE"},
		{Descriptor{Name: "vxlan", Transport: UDP, Decode: decode}, "name taken"},
		{Descriptor{Name: "other", Transport: UDP, Port: 4789, Decode: decode}, "port 4789 taken by vxlan"},
	} {
		k, err := Register(tt.d)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Register(%+v) = %v, %v; want an error containing %q", tt.d, k, err, tt.want)
		}
	}
}
