package decap

import "testing"

func TestUDPPayload(t *testing.T) {
	frame := make([]byte, 60)
	tests := []struct {
		name   string
		data   []byte
		length int
		want   Reason
	}{
		{"empty", nil, 0, ShortFrame},
		{"one byte short of a header", frame[:13], 13, ShortFrame},
		{"bare header", frame[:14], 14, OK},
		{"minimum frame", frame, 60, OK},
		{"cut by snaplen, long on the wire", frame[:10], 1514, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, r := UDPPayload(tt.data, tt.length)
			if r != tt.want {
				t.Fatalf("reason = %v, want %v", r, tt.want)
			}
			if r == OK && len(inner) != len(tt.data) {
				t.Fatalf("inner has %d bytes, want %d", len(inner), len(tt.data))
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	for r := OK; r < NumReasons; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("reason %d has no label", r)
		}
	}
	if got := NumReasons.String(); got != "unknown" {
		t.Errorf("out-of-range reason = %q, want unknown", got)
	}
}
