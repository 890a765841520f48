package pcapout

import (
	"testing"
	"time"
)

func TestStrftime(t *testing.T) {
	ts := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	tests := []struct{ format, want string }{
		{"cap-%Y%m%d-%H%M%S.pcap", "cap-20260307-140509.pcap"},
		{"%y/%j/%e", "26/066/ 7"},
		{"%F %T", "2026-03-07 14:05:09"},
		{"%I%p %a %b %A %B", "02PM Sat Mar Saturday March"},
		{"%s", "1772892309"},
		{"%u%w", "66"},
		{"100%% %q", "100% %q"},
		{"trailing %", "trailing %"},
		{"plain.pcap", "plain.pcap"},
	}
	for _, tt := range tests {
		if got := strftime(tt.format, ts); got != tt.want {
			t.Errorf("strftime(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
}

func TestHasConversion(t *testing.T) {
	for format, want := range map[string]bool{
		"x-%Y.pcap": true, "x-%H%M%S": true, "x-%s": true, "x.pcap": false, "100%%": false,
	} {
		if got := hasConversion(format); got != want {
			t.Errorf("hasConversion(%q) = %v, want %v", format, got, want)
		}
	}
}
