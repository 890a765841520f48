// Package termtext makes text from elsewhere (dp-service, a file, a
// bucket) safe to print on a terminal.
package termtext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every character a terminal would act on or hide
// written as a Go escape: control characters (ESC, BEL, CR…), format
// characters such as bidirectional overrides, other non-printable runes
// (as strconv.Quote writes them) and invalid UTF-8 bytes (\xff). Printable
// text, spaces and backslashes are left as they are, so plain text reads
// unchanged.
func Escape(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == ' ' || strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
