package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// age is how old each packet's timestamp is when the test server sends it.
const age = 20 * time.Millisecond

// writeStream writes a pcapng stream of n packets on two interfaces to w,
// flushing after each, each stamped age before it is written; then the
// Interface Statistics Blocks of a viewer that lost 3 frames of vm-1, and,
// with cut, half a packet block.
func writeStream(w io.Writer, flush func(), n int, cut bool) error {
	ng, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{Name: "vm-1", LinkType: layers.LinkTypeEthernet, SnapLength: 262144},
		pcapgo.NgWriterOptions{})
	if err != nil {
		return err
	}
	if _, err := ng.AddInterface(pcapgo.NgInterface{Name: "vm-2", LinkType: layers.LinkTypeEthernet, SnapLength: 262144}); err != nil {
		return err
	}
	for i := range n {
		data := bytes.Repeat([]byte{byte(i)}, 60+i)
		ci := gopacket.CaptureInfo{Timestamp: time.Now().Add(-age), CaptureLength: len(data), Length: len(data), InterfaceIndex: i % 2}
		if err := ng.WritePacket(ci, data); err != nil {
			return err
		}
		ng.Flush()
		flush()
	}
	for i, lost := range []uint64{3, 0} {
		st := pcapgo.NgInterfaceStatistics{LastUpdate: time.Now(), PacketsReceived: uint64(n/2 + 3 - i*3), PacketsDropped: lost}
		if err := ng.WriteInterfaceStats(i, st); err != nil {
			return err
		}
	}
	if err := ng.Flush(); err != nil {
		return err
	}
	if cut {
		// An enhanced packet block's type and length, and nothing after.
		if _, err := w.Write([]byte{6, 0, 0, 0, 64, 0, 0, 0}); err != nil {
			return err
		}
	}
	flush()
	return nil
}

func TestReadStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  bool
	}{
		{"whole", false},
		{"cut short", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-pcapng")
				if err := writeStream(w, w.(http.Flusher).Flush, 100, tc.cut); err != nil {
					t.Error(err)
				}
			}))
			defer srv.Close()
			s, err := readStream(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if s.packets != 100 || s.lost != 3 || (s.cutBy != nil) != tc.cut {
				t.Errorf("packets %d lost %d cut by %v, want 100, 3, cut %v", s.packets, s.lost, s.cutBy, tc.cut)
			}
			if len(s.latency) != 100 {
				t.Fatalf("%d latencies for 100 packets", len(s.latency))
			}
			for _, l := range s.latency {
				if l < age || l > age+10*time.Second {
					t.Fatalf("latency %v of a packet sent %v after its timestamp", l, age)
				}
			}
			if !strings.Contains(s.String(), " latency_us median ") {
				t.Errorf("no latency in %q", s)
			}

			// The same stream from a file: the same packets and hash.
			var b bytes.Buffer
			if err := writeStream(&b, func() {}, 100, tc.cut); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(t.TempDir(), "s.pcapng")
			if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := readFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.SplitN(s.String(), " latency_us", 2)[0]
			if f.String() != want {
				t.Errorf("file: %q, stream: %q", f, want)
			}
		})
	}
}

func TestReadStreamRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, err := readStream(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized: no token") {
		t.Errorf("error %v, want the status and the server's line", err)
	}
}

// The hash covers the frames, not their timestamps: sinkd's file and a
// viewer's stream of the same frames hash alike.
func TestHashIgnoresTimestamps(t *testing.T) {
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		w := pcapgo.NewWriterNanos(buf)
		w.WriteFileHeader(65536, layers.LinkTypeEthernet)
		for i := range 5 {
			data := bytes.Repeat([]byte{byte(i)}, 64)
			w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: 64, Length: 64}, data)
		}
	}
	sa, err := read(&a, nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := read(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sa.String() != sb.String() || sa.packets != 5 {
		t.Errorf("%q and %q", sa, sb)
	}
}
