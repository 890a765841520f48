package reassembly

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzAdd feeds arbitrary fragments, cut from the input, to a small
// reassembler: it must not panic, must keep within its bounds, and must
// account for every fragment it takes.
func FuzzAdd(f *testing.F) {
	for _, p := range [][]byte{datagram4(7, 17, payload(3000)), datagram6(payload(3000))} {
		var seed []byte
		for _, fr := range fragments(f, p, 1480, 2960) {
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(fr)))
			seed = append(seed, fr...)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := New(Config{MaxBytes: 1 << 16, MaxDatagrams: 4, Timeout: time.Second})
		var taken uint64
		for i := 0; len(in) >= 2; i++ {
			n := min(int(binary.BigEndian.Uint16(in)), len(in)-2)
			frag := in[2 : 2+n]
			in = in[2+n:]
			out, o := r.Add(frag, t0.Add(time.Duration(i)*100*time.Millisecond))
			if o != OtherProtocol {
				taken++
			}
			if o == Complete && len(out) == 0 {
				t.Fatal("an empty datagram")
			}
			st := r.Stats()
			if st.Taken() != taken {
				t.Fatalf("%d fragments taken, %d accounted: %+v", taken, st.Taken(), st)
			}
			if st.Bytes > 1<<16 || st.Datagrams > 4 || int(st.Datagrams) != len(r.pending) {
				t.Fatalf("out of bounds: %+v", st)
			}
		}
		r.Flush()
		if st := r.Stats(); st.Held != 0 || st.Bytes != 0 || st.Datagrams != 0 || st.Taken() != taken {
			t.Fatalf("after Flush: %+v", st)
		}
	})
}
