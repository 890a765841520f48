// Package units parses the byte sizes tcpdump users type: a number with an
// optional k, m or g suffix (either case) for KiB, MiB or GiB.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes parses s. A bare number counts in unit bytes (tcpdump's -C
// counts in millions); a suffix overrides the unit. The result must be
// positive, or zero when allowZero, and at most max.
func ParseBytes(s string, unit, max int64, allowZero bool) (int64, error) {
	mult, num := unit, s
	if n := len(s); n > 0 {
		switch strings.ToLower(s[n-1:]) {
		case "k":
			mult, num = 1<<10, s[:n-1]
		case "m":
			mult, num = 1<<20, s[:n-1]
		case "g":
			mult, num = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil || v < 0 || (v == 0 && !allowZero):
		return 0, fmt.Errorf("invalid size %q: want a number with an optional k, m or g suffix", s)
	case v > max/mult:
		return 0, fmt.Errorf("invalid size %q: larger than %d bytes", s, max)
	}
	return v * mult, nil
}
