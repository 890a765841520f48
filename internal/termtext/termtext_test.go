package termtext

import "testing"

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"vm-1", "vm-1"},
		{`a "b" \ c`, `a "b" \ c`},
		{"vm-1\x1b[31mred\x1b[0m", `vm-1\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\a", `\x1b]0;title\a`},
		{"line\r\nnext\t", `line\r\nnext\t`},
		{"ü 名前", "ü 名前"},
		{"abc\u202edcba", `abc\u202edcba`}, // right-to-left override
		{"\u00a0nbsp", `\u00a0nbsp`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"\x9b31m", `\x9b31m`}, // a C1 CSI as a raw byte
		{"\u009b31m", `\u009b31m`},
	} {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
