package units

import (
	"math"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in        string
		unit, max int64
		allowZero bool
		want      int64
		wantErr   bool
	}{
		{"1", 1_000_000, math.MaxInt64, false, 1_000_000, false},
		{"10k", 1_000_000, math.MaxInt64, false, 10 << 10, false},
		{"10K", 1, math.MaxInt64, false, 10 << 10, false},
		{"3m", 1, math.MaxInt64, false, 3 << 20, false},
		{"2G", 1, math.MaxInt64, false, 2 << 30, false},
		{"4096", 1, math.MaxInt64, false, 4096, false},
		{"0", 1, math.MaxInt64, true, 0, false},
		{"0", 1, math.MaxInt64, false, 0, true},
		{"", 1, math.MaxInt64, true, 0, true},
		{"-1", 1, math.MaxInt64, true, 0, true},
		{"1.5", 1, math.MaxInt64, false, 0, true},
		{"k", 1, math.MaxInt64, false, 0, true},
		{"10x", 1, math.MaxInt64, false, 0, true},
		{"2g", 1, math.MaxInt32, false, 0, true},
		{"99999999999999g", 1, math.MaxInt64, false, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in, tt.unit, tt.max, tt.allowZero)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseBytes(%q, %d) = %d, %v; want %d, error %v", tt.in, tt.unit, got, err, tt.want, tt.wantErr)
		}
	}
}
