package sink

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAllow(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, want string // want: the rules' String, joined by commas
		ifindex  int    // of the first rule
		err      string
	}{
		{in: "2001:db8::/32, 192.0.2.7", want: "2001:db8::/32,192.0.2.7/32"},
		{in: "2001:db8::1:2/64", want: "2001:db8::/64"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{in: "::/0,0.0.0.0/0", want: "::/0,0.0.0.0/0"},
		{in: "fe80::1%lo", want: "fe80::1%lo/128", ifindex: lo.Index},
		{in: "fe80::%lo/64", want: "fe80::%lo/64", ifindex: lo.Index},
		{in: "fe80::/64%lo", want: "fe80::%lo/64", ifindex: lo.Index},
		{in: "192.0.2.7%1", want: "192.0.2.7%1/32", ifindex: 1},
		{in: "fe80::1%no-such-if0", err: "zone no-such-if0: no such interface"},
		{in: "fe80::1%999999", err: "no interface with index 999999"},
		{in: "fe80::1%", err: "empty zone"},
		{in: "2001:db8::/129", err: "bad prefix length"},
		{in: "192.0.2.0/x", err: "bad prefix length"},
		{in: "sinkd.example", err: "want prefixes like"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rules, err := ParseAllow(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rules {
				got = append(got, r.String())
			}
			if strings.Join(got, ",") != tt.want || rules[0].IfIndex != tt.ifindex {
				t.Errorf("got %v (interface %d), want %s (%d)", got, rules[0].IfIndex, tt.want, tt.ifindex)
			}
		})
	}
}

func TestAllowRuleMatches(t *testing.T) {
	rule := func(s string) AllowRule {
		r, err := ParseAllow(s)
		if err != nil {
			t.Fatal(err)
		}
		return r[0]
	}
	a := netip.MustParseAddr
	tests := []struct {
		rule    AllowRule
		src     netip.Addr
		ifindex int
		want    bool
	}{
		{rule("2001:db8::/32"), a("2001:db8::9"), 0, true},
		{rule("2001:db8::/32"), a("2001:db9::9"), 0, false},
		// Both spellings of an IPv4 sender match both spellings of a rule.
		{rule("192.0.2.7"), a("192.0.2.7"), 0, true},
		{rule("192.0.2.7"), a("::ffff:192.0.2.7"), 0, true},
		{rule("::ffff:192.0.2.7"), a("192.0.2.7"), 0, true},
		{rule("::ffff:192.0.2.7"), a("::ffff:192.0.2.7"), 0, true},
		{rule("::/0"), a("192.0.2.7"), 0, false},
		// A zone requires the arrival interface.
		{rule("fe80::1%1"), a("fe80::1"), 1, true},
		{rule("fe80::1%1"), a("fe80::1"), 2, false},
		{rule("fe80::1%1"), a("fe80::1"), 0, false},
		{rule("fe80::1"), a("fe80::1"), 2, true},
	}
	for _, tt := range tests {
		if got := tt.rule.Matches(tt.src, tt.ifindex); got != tt.want {
			t.Errorf("%s matches %s on %d: %v, want %v", tt.rule, tt.src, tt.ifindex, got, tt.want)
		}
	}
}
