package pcapout

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1", 1_000_000, false},
		{"250", 250_000_000, false},
		{"10k", 10 << 10, false},
		{"10K", 10 << 10, false},
		{"3m", 3 << 20, false},
		{"2G", 2 << 30, false},
		{"", 0, true},
		{"0", 0, true},
		{"-1", 0, true},
		{"1.5", 0, true},
		{"k", 0, true},
		{"10x", 0, true},
		{"99999999999999g", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
