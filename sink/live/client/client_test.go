package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

const testToken = "s3cret-token-0123456789abcdef"

// stream builds a capture stream as a sink sends it: through
// pcapout.Stream, with statistics blocks between.
type stream struct {
	bytes.Buffer
	s *pcapout.Stream
}

func newStream(format pcapout.Format) *stream {
	st := &stream{}
	st.s = pcapout.NewStream(&st.Buffer, pcapout.StreamOptions{Format: format, Application: "sinkd test", FlushSize: 1})
	return st
}

func (st *stream) iface(t *testing.T, name string) int {
	t.Helper()
	i, err := st.s.AddInterface(pcapout.Interface{Name: name}, layers.LinkTypeEthernet, 262144)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// frames writes n frames of iface, each tagged with its number from
// first.
func (st *stream) frames(t *testing.T, iface, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		f := make([]byte, 60)
		copy(f[14:], fmt.Sprintf("frame %d", i))
		if err := st.s.WritePacket(iface, time.Unix(1700000000, int64(i)), f, len(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// isb writes an interface statistics block with isb_ifdrop, as a sink
// tells a viewer its losses.
func (st *stream) isb(t *testing.T, iface int, drop uint64) {
	t.Helper()
	if err := st.s.WriteStats(iface, pcapout.InterfaceStats{Received: 100, Dropped: drop}, time.Unix(1700000000, 0), time.Unix(1700000001, 0)); err != nil {
		t.Fatal(err)
	}
}

// sinkServer is a TLS server on addr ("" for any) answering handler.
func sinkServer(t *testing.T, certs testkit.Certs, addr string, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	if addr != "" {
		srv.Listener.Close()
		// The previous server's address, free again.
		testkit.Eventually(t, 10*time.Second, "listen on "+addr, func() bool {
			srv.Listener, err = net.Listen("tcp", addr)
			return err == nil
		})
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// serve answers with body as a stream of the format: written in pieces,
// flushed, as a sink sends it.
func serve(body []byte, pcap bool, trailers map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pcapng")
		if pcap {
			w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
		}
		for k := range trailers {
			w.Header().Add("Trailer", k)
		}
		for len(body) > 0 {
			n := min(len(body), 100)
			w.Write(body[:n])
			w.(http.Flusher).Flush()
			body = body[n:]
		}
		for k, v := range trailers {
			w.Header().Set(k, v)
		}
	}
}

func tokenFile(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(name, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func newTestSink(t *testing.T, certs testkit.Certs, u string) *Sink {
	t.Helper()
	s, err := NewSink(u, Auth{TokenFile: tokenFile(t), CA: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tsharkFrames is the times of a capture's frames as tshark reads them;
// it fails unless tshark reads the capture whole.
func tsharkFrames(t *testing.T, data []byte) []string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tshark", "-r", name, "-T", "fields", "-e", "frame.time_epoch")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, stderr.Bytes())
	}
	return strings.Fields(string(out))
}

func TestWatchCountsFramesAndLosses(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	st := newStream(pcapout.FormatPcapng)
	a := st.iface(t, "vm-1")
	st.frames(t, a, 0, 5)
	st.isb(t, a, 3)
	b := st.iface(t, "vm-2")
	st.frames(t, b, 5, 2)
	st.isb(t, b, 4)
	st.isb(t, a, 7) // counts since the viewer came: 7, not 3+7
	sent := st.Bytes()
	var query url.Values
	var auth string
	srv := sinkServer(t, certs, "", func(w http.ResponseWriter, r *http.Request) {
		query, auth = r.URL.Query(), r.Header.Get("Authorization")
		serve(sent, false, nil)(w, r)
	})
	var got bytes.Buffer
	p := &Progress{}
	sum, err := newTestSink(t, certs, srv.URL).Watch(context.Background(),
		Request{Ports: []string{"vm-1", "vm-2"}, Filter: "tcp port 443", SnapLen: 128, Count: 7}, &got, Options{Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Frames: 7, Lost: 11, Ports: []PortCounts{
		{Name: "vm-1", Frames: 5, Received: 100, Lost: 7}, {Name: "vm-2", Frames: 2, Received: 100, Lost: 4}}}
	if !reflect.DeepEqual(sum, want) {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if p.Frames.Load() != 7 || p.Lost.Load() != 11 {
		t.Errorf("progress: %d frames, %d lost", p.Frames.Load(), p.Lost.Load())
	}
	if !bytes.Equal(got.Bytes(), sent) {
		t.Errorf("the stream was changed on its way: %d bytes written of %d", got.Len(), len(sent))
	}
	if n := len(tsharkFrames(t, got.Bytes())); n != 7 {
		t.Errorf("tshark reads %d frames, want 7", n)
	}
	wantQuery := url.Values{"port": {"vm-1", "vm-2"}, "filter": {"tcp port 443"}, "snaplen": {"128"}, "format": {"pcapng"}, "count": {"7"}}
	if query.Encode() != wantQuery.Encode() {
		t.Errorf("query %s, want %s", query.Encode(), wantQuery.Encode())
	}
	if auth != "Bearer "+testToken {
		t.Errorf("Authorization %q", auth)
	}
}

func TestWatchPcapTrailers(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	st := newStream(pcapout.FormatPcap)
	st.frames(t, st.iface(t, ""), 0, 3)
	sent := st.Bytes()
	srv := sinkServer(t, certs, "", serve(sent, true, map[string]string{"Dpcap-Frames": "3", "Dpcap-Lost": "5"}))
	var got bytes.Buffer
	sum, err := newTestSink(t, certs, srv.URL).Watch(context.Background(), Request{Pcap: true, Count: 3}, &got, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Frames: 3, Lost: 5}); !reflect.DeepEqual(sum, want) {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if !bytes.Equal(got.Bytes(), sent) {
		t.Errorf("the stream was changed on its way")
	}
}

// logs collects a watch's messages.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestWatchReconnects cuts the stream in the middle of a frame and
// brings the sink back on the same address: the output is one capture
// holding every frame once, the half frame left out.
func TestWatchReconnects(t *testing.T) {
	for _, format := range []pcapout.Format{pcapout.FormatPcapng, pcapout.FormatPcap} {
		t.Run(format.String(), func(t *testing.T) {
			certs := testkit.NewCerts(t, "127.0.0.1")
			pcap := format == pcapout.FormatPcap
			first := newStream(format)
			first.frames(t, first.iface(t, "vm-1"), 0, 3)
			whole := first.Len()
			first.frames(t, 0, 3, 1) // cut in two below
			cut := first.Bytes()[:whole+20]
			gone := make(chan struct{})
			srv := sinkServer(t, certs, "", func(w http.ResponseWriter, r *http.Request) {
				serve(cut, pcap, nil)(w, r)
				close(gone)
				<-r.Context().Done()
			})
			second := newStream(format)
			second.frames(t, second.iface(t, "vm-1"), 3, 4)
			if !pcap {
				second.isb(t, 0, 2)
			}
			var count atomic.Value
			l := &logs{}
			var got bytes.Buffer
			done := make(chan error, 1)
			var sum Summary
			go func() {
				var err error
				sum, err = newTestSink(t, certs, srv.URL).Watch(context.Background(), Request{Pcap: pcap, Count: 7}, &got,
					Options{Logf: l.logf, MinBackoff: 50 * time.Millisecond})
				done <- err
			}()
			<-gone
			addr := srv.Listener.Addr().String()
			srv.CloseClientConnections()
			srv.Close()
			trailers := map[string]string{}
			if pcap {
				trailers["Dpcap-Lost"] = "2"
			}
			sinkServer(t, certs, addr, func(w http.ResponseWriter, r *http.Request) {
				count.Store(r.URL.Query().Get("count"))
				serve(second.Bytes(), pcap, trailers)(w, r)
			})
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%v\n%s", err, l)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no end\n%s", l)
			}
			if want := (Summary{Frames: 7, Lost: 2, Reconnects: 1}); sum.Frames != want.Frames || sum.Lost != want.Lost || sum.Reconnects != want.Reconnects {
				t.Errorf("summary %+v, want %+v", sum, want)
			}
			if c := count.Load(); c != "4" {
				t.Errorf("asked the sink for %v frames after 3 of 7", c)
			}
			times := tsharkFrames(t, got.Bytes())
			want := []string{"1700000000.000000000", "1700000000.000000001", "1700000000.000000002",
				"1700000000.000000003", "1700000000.000000004", "1700000000.000000005", "1700000000.000000006"}
			if strings.Join(times, " ") != strings.Join(want, " ") {
				t.Errorf("frames read back: %v, want %v", times, want)
			}
			msgs := l.String()
			if !strings.Contains(msgs, "sink went away: ") || !strings.Contains(msgs, "reconnecting in 50ms") || !strings.Contains(msgs, "reconnected") {
				t.Errorf("messages:\n%s", msgs)
			}
		})
	}
}

// TestWatchRefused: a sink that refuses the viewer is asked once; what
// it said is in the error, the token never.
func TestWatchRefused(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var asked atomic.Int32
			srv := sinkServer(t, certs, "", func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				// A careless server echoes what it got.
				http.Error(w, "refused "+r.Header.Get("Authorization"), code)
			})
			var got bytes.Buffer
			_, err := newTestSink(t, certs, srv.URL).Watch(context.Background(), Request{}, &got,
				Options{MinBackoff: time.Millisecond})
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code {
				t.Fatalf("error %v, want the sink's %d", err, code)
			}
			if strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "refused Bearer [token]") {
				t.Errorf("error text: %v", err)
			}
			if n := asked.Load(); n != 1 {
				t.Errorf("asked %d times", n)
			}
			if got.Len() != 0 {
				t.Errorf("%d bytes written", got.Len())
			}
		})
	}
}

func TestWatchUntrustedSink(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	srv := sinkServer(t, certs, "", serve(nil, false, nil))
	other := testkit.NewCerts(t, "127.0.0.1")
	_, err := newTestSink(t, other, srv.URL).Watch(context.Background(), Request{}, &bytes.Buffer{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v, want the certificate refused", err)
	}
}

func TestNewSink(t *testing.T) {
	tf := tokenFile(t)
	for _, tc := range []struct {
		url, tokenFile, envToken string
		want                     string // error text; "" none
		token                    string
	}{
		{url: "https://sink-1:9311", tokenFile: tf, token: testToken},
		{url: "sink-1:9311", envToken: "env-token-0123456789", token: "env-token-0123456789"},
		{url: "http://127.0.0.1:9311", tokenFile: tf, token: testToken},
		{url: "http://[::1]:9311", tokenFile: tf, token: testToken},
		{url: "http://sink-1:9311", tokenFile: tf, want: "refusing to send the token in clear text to sink-1:9311"},
		{url: "http://sink-1:9311"},
		{url: "https://u:pw@sink-1:9311", want: "credentials go in a token file"},
		// A token put in the URL by habit is not said back.
		{url: "https://" + testToken + "@sink-1:9311", want: `invalid sink URL "https://sink-1:9311": credentials go in a token file`},
		{url: "ftp://" + testToken + "@sink-1", want: `invalid sink URL "ftp://sink-1": want https://HOST:PORT`},
		{url: "https://" + testToken + " @sink-1:9311", want: "invalid sink URL: net/url: invalid userinfo"},
		{url: "ftp://sink-1", want: "want https://HOST:PORT"},
		{url: "https://sink-1", tokenFile: "/nonexistent", want: "read token: open /nonexistent"},
	} {
		t.Setenv(EnvToken, tc.envToken)
		s, err := NewSink(tc.url, Auth{TokenFile: tc.tokenFile})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.want)
		case err == nil && s.token != tc.token:
			t.Errorf("%s: token %q, want %q", tc.url, s.token, tc.token)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: the token in %v", tc.url, err)
		}
	}
}

func TestPorts(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	srv := sinkServer(t, certs, "", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ports" || r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, `{"ports":[{"name":"vm-1","description":"VF 1"},{"name":"vm-2"}]}`)
	})
	ports, err := newTestSink(t, certs, srv.URL).Ports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ports) != "[{vm-1 VF 1} {vm-2 }]" {
		t.Errorf("ports %v", ports)
	}
}
