package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

const nicEther = "../../testdata/envelopes/nic-ether.pcap"

// writeTemp writes b to a file of the test named name.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	name = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// readAll reads a file with both readers, ReadFile and OpenSource, and
// fails the test unless they agree; it returns the packets and the error
// that ended the reading (nil at the end of the file).
func readAll(t *testing.T, name string) ([]Packet, error) {
	t.Helper()
	pkts, _, err := ReadFile(name)
	src, serr := OpenSource(name)
	if (err == nil) != (serr == nil) && serr != nil {
		t.Fatalf("ReadFile: %v; OpenSource: %v", err, serr)
	}
	if serr != nil {
		return pkts, err
	}
	defer src.Close()
	i := 0
	for {
		b, rerr := src.Read(7)
		for _, p := range b {
			if i >= len(pkts) || !bytes.Equal(p.Data, pkts[i].Data) || !p.Timestamp.Equal(pkts[i].Info.Timestamp) || p.Length != pkts[i].Info.Length {
				t.Fatalf("packet %d: OpenSource and ReadFile disagree", i+1)
			}
			i++
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if err == nil {
				t.Fatalf("OpenSource: %v; ReadFile read to the end", rerr)
			}
			break
		}
	}
	if i != len(pkts) {
		t.Fatalf("OpenSource read %d packets, ReadFile %d", i, len(pkts))
	}
	return pkts, err
}

// tsharkTimes is each packet's frame.time_epoch as tshark reads name.
func tsharkTimes(t *testing.T, name string) []string {
	t.Helper()
	out, err := exec.Command("tshark", "-r", name, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", name, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func epoch(ts time.Time) string { return fmt.Sprintf("%d.%09d", ts.Unix(), ts.Nanosecond()) }

// TestPowerOfTwoResolutions: pcapng timestamps in units of 2^-k s (if_tsresol
// with its high bit set) read to the nanosecond, rounded down as Wireshark
// does; powers of ten read as before. Two sections, several interfaces
// each, both byte orders; tshark agrees wherever it is exact (to 2^-33 and
// 10^-9: finer units overflow its arithmetic).
func TestPowerOfTwoResolutions(t *testing.T) {
	frames := testkit.ReadFrames(t, nicEther)
	type res struct {
		tsresol byte
		units   *big.Int // per second
		maxSecs uint64   // the seconds 64 bits hold
		tshark  bool
	}
	var all []res
	for _, k := range []uint{20, 30, 33, 1, 40, 63} {
		all = append(all, res{0x80 | byte(k), new(big.Int).Lsh(big.NewInt(1), k), 1<<(64-k) - 1, k <= 33})
	}
	for _, d := range []int64{6, 9} {
		u := new(big.Int).Exp(big.NewInt(10), big.NewInt(d), nil)
		all = append(all, res{byte(d), u, ^uint64(0) / u.Uint64(), true})
	}
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			ng := &testkit.Pcapng{Order: order}
			var want []time.Time
			var checked []bool
			r := rand.New(rand.NewPCG(3, 4))
			for section := range 2 {
				ifs := append(all[section*3:], all[:section*3]...)
				ng.Section(1, 0)
				for _, i := range ifs {
					ng.Interface(i.tsresol)
				}
				for n := range 60 {
					i := ifs[n%len(ifs)]
					secs := min(uint64(1795291901+n), i.maxSecs-uint64(n%2))
					frac := new(big.Int).SetUint64(r.Uint64N(i.units.Uint64()))
					ts := new(big.Int).Mul(new(big.Int).SetUint64(secs), i.units)
					ts.Add(ts, frac)
					ns := frac.Mul(frac, big.NewInt(1e9)).Div(frac, i.units)
					ng.Packet(uint32(n%len(ifs)), ts.Uint64(), frames[n%len(frames)])
					want = append(want, time.Unix(int64(secs), ns.Int64()))
					checked = append(checked, i.tshark)
				}
			}
			name := writeTemp(t, "res.pcapng", ng.Bytes())
			pkts, err := readAll(t, name)
			if err != nil || len(pkts) != len(want) {
				t.Fatalf("read %d packets (%v), want %d", len(pkts), err, len(want))
			}
			for i, p := range pkts {
				if !p.Info.Timestamp.Equal(want[i]) {
					t.Errorf("packet %d: %s, want %s (off by %v)", i+1, epoch(p.Info.Timestamp), epoch(want[i]), p.Info.Timestamp.Sub(want[i]))
				}
			}
			for i, got := range tsharkTimes(t, name) {
				if checked[i] && got != epoch(want[i]) {
					t.Errorf("packet %d: tshark reads %s, want %s", i+1, got, epoch(want[i]))
				}
			}
		})
	}
}
