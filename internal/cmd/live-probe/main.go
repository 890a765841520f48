// Command live-probe reads a capture stream from sinkd --live for the
// benchmarks (scripts/bench.sh, section viewers). It notes the wall clock
// as each packet arrives and prints how long after the packet's timestamp
// that was: sinkd stamps a frame with the kernel's receive time of its
// envelope, so this is the latency from the envelope's arrival at the sink
// to the viewer (the probe must run on the sink's machine, on the same
// clock). With -r it reads a capture file instead, e.g. what curl saved of
// a stream, or sinkd's own file.
//
// Either way it prints one line: the packets read, the frames the sink
// lost for this viewer (the last pcapng Interface Statistics Block's
// isb_ifdrop of each interface), whether the stream was cut short, a
// SHA-256 of the frames in order (their lengths and bytes, not their
// timestamps: two captures of the same stream hash alike), and, from a
// URL, the latency's median, 99th percentile and maximum in microseconds:
//
//	live-probe 'http://127.0.0.1:9311/v1/stream?port=vm-1'
//	packets 300000 lost 0 cut no sha256 5d41... latency_us median 412 p99 1530 max 2210
//	live-probe -r viewer.pcapng
//	packets 300000 lost 0 cut no sha256 5d41...
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket/pcapgo"
)

func main() {
	file := flag.String("r", "", "read this capture file instead of a stream")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: live-probe URL | live-probe -r FILE")
	}
	flag.Parse()
	if (*file == "") != (flag.NArg() == 1) {
		flag.Usage()
		os.Exit(2)
	}
	var (
		s   summary
		err error
	)
	if *file != "" {
		s, err = readFile(*file)
	} else {
		s, err = readStream(flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "live-probe:", err)
		os.Exit(1)
	}
	if s.cutBy != nil {
		fmt.Fprintln(os.Stderr, "live-probe: the stream was cut short:", s.cutBy)
	}
	fmt.Println(s)
}

// summary is what the probe saw of a stream or file.
type summary struct {
	packets int
	lost    uint64
	cutBy   error // why the stream ended before a block's end, if it did
	hash    hash.Hash
	latency []time.Duration // arrival minus timestamp, per packet; nil for a file
}

func (s summary) String() string {
	cut := "no"
	if s.cutBy != nil {
		cut = "yes"
	}
	line := fmt.Sprintf("packets %d lost %d cut %s sha256 %s", s.packets, s.lost, cut, hex.EncodeToString(s.hash.Sum(nil)))
	if s.latency != nil {
		l := slices.Clone(s.latency)
		slices.Sort(l)
		us := func(d time.Duration) int64 { return d.Microseconds() }
		var med, p99, maxl int64
		if n := len(l); n > 0 {
			med, p99, maxl = us(l[n/2]), us(l[(n*99+99)/100-1]), us(l[n-1])
		}
		line += fmt.Sprintf(" latency_us median %d p99 %d max %d", med, p99, maxl)
	}
	return line
}

func readFile(name string) (summary, error) {
	f, err := os.Open(name)
	if err != nil {
		return summary{}, err
	}
	defer f.Close()
	s, err := read(f, nil)
	if err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// readStream reads the stream at url to its end, noting each packet's
// latency.
func readStream(url string) (summary, error) {
	resp, err := http.Get(url)
	if err != nil {
		return summary{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return summary{}, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return read(resp.Body, time.Now)
}

// read reads packets from r until it ends. With now, it records each
// packet's latency: now() when the reader hands the packet over, minus
// its timestamp.
func read(r io.Reader, now func() time.Time) (summary, error) {
	s := summary{hash: sha256.New()}
	if now != nil {
		s.latency = []time.Duration{}
	}
	pr, err := pcapfile.NewReader(r)
	if err != nil {
		return s, err
	}
	var lens [8]byte
	for {
		data, ci, _, err := pr.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.cutBy = err
			break
		}
		if now != nil {
			s.latency = append(s.latency, now().Sub(ci.Timestamp))
		}
		s.packets++
		binary.BigEndian.PutUint32(lens[:4], uint32(ci.CaptureLength))
		binary.BigEndian.PutUint32(lens[4:], uint32(ci.Length))
		s.hash.Write(lens[:])
		s.hash.Write(data)
	}
	for i := range pr.NumInterfaces() {
		iface, err := pr.Interface(i)
		if err != nil {
			return s, err
		}
		if d := iface.Statistics.PacketsDropped; d != pcapgo.NgNoValue64 {
			s.lost += d
		}
	}
	return s, nil
}
