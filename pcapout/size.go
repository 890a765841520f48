package pcapout

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a -C file size the way tcpdump does: a plain number is in
// millions of bytes; a k, m or g suffix (either case) means KiB, MiB or GiB.
func ParseSize(s string) (int64, error) {
	mult := int64(1_000_000)
	num := s
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
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("invalid file size %q: want a positive number of millions of bytes, or a k/m/g suffix", s)
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("invalid file size %q: too large", s)
	}
	return v * mult, nil
}
