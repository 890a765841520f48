package printable

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"vm-1", "vm-1"},
		{"port 1 (eth0)", "port 1 (eth0)"},
		{"naïve 端口", "naïve 端口"},
		{"\x1b]0;owned\a", `\x1b]0;owned\x07`},
		{"\x1b[2J\x1b[31mred", `\x1b[2J\x1b[31mred`},
		{"a\nb\rc\td", `a\x0ab\x0dc\x09d`},
		{"\x7f\u0085", `\x7f\u0085`},
		{"abc\u202edcba", `abc\u202edcba`}, // a right-to-left override
		{"\u200b", `\u200b`},               // zero width space (format)
		{"\xff\xfe", `\xff\xfe`},
		{`a\x1b`, `a\\x1b`}, // a literal backslash cannot pass for an escape
		{"\U000e0001", `\U000e0001`},
		{"", ""},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
