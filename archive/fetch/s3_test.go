package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestS3Hostile reads a bucket shared with foreign objects (a README, a
// text file among the captures, an object named as a capture that is
// none, a capture without sinkd's metadata), the files of a sink whose
// clock runs an hour ahead of the others, and a file whose last packet is
// older than its first (a clock stepped back). The foreign objects are
// skipped or named as damaged, and the port's packets of the window all
// come back, in order.
func TestS3Hostile(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c := srv.Client(t)
	srv.MakeBucket(t, c, "shared")
	loc := archive.Location{Bucket: "shared", Prefix: "captures"}
	ctx := context.Background()
	dir := t.TempDir()
	put := func(key string, body []byte, meta map[string]string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &loc.Bucket, Key: &key, Body: bytes.NewReader(body), Metadata: meta}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	// capture puts a pcapng file of vm-1 and vm-2 packets as sinkd would.
	capture := func(sink string, sources []string, pkts []pkt, withMeta bool) {
		t.Helper()
		name := filepath.Join(dir, "f.pcapng")
		writeNg(t, name, []pcapgo.NgInterface{ngIface("vm-1", ""), ngIface("vm-2", "")}, pkts)
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		m := archive.Meta{Sink: sink, Host: sink, File: "/var/lib/dpcap/cap.pcapng", Format: "pcapng",
			First: t0.Add(pkts[0].at), Last: t0.Add(pkts[len(pkts)-1].at), Packets: uint64(len(pkts)), Bytes: uint64(len(b)), Sources: sources}
		var h map[string]string
		if withMeta {
			h = m.Headers()
		}
		put(m.Key(loc), b, h)
	}
	put("captures/README.txt", []byte("what this bucket holds"), nil)
	put("captures/2026/11/23/10/sink-a/notes.txt", []byte("notes"), nil)
	put(loc.Key("sink-c", t0.Add(55*time.Minute), t0.Add(56*time.Minute), "junk.pcapng"), []byte("not a capture"), nil)
	capture("sink-a", []string{"vm-1", "vm-2"}, []pkt{{0, 40 * time.Minute, "a0"}, {0, 52 * time.Minute, "a1"}, {1, 53 * time.Minute, "a-vm2"}, {0, 58 * time.Minute, "a2"}}, true)
	capture("sink-a", []string{"vm-2"}, []pkt{{1, 54 * time.Minute, "a-only-vm2"}}, true)
	capture("sink-d", nil, []pkt{{0, 51 * time.Minute, "d-nometa"}}, false)
	// sink-b's clock is an hour ahead: its packets are stamped 11:xx.
	capture("sink-b", []string{"vm-1"}, []pkt{{0, 65 * time.Minute, "b1"}, {0, 70 * time.Minute, "b2"}}, true)
	capture("sink-b", []string{"vm-1"}, []pkt{{0, 150 * time.Minute, "b-late"}}, true)
	// sink-e's clock stepped back by ten minutes during its file.
	capture("sink-e", []string{"vm-1"}, []pkt{{0, 59 * time.Minute, "e1"}, {0, 49 * time.Minute, "e-before-window"}, {0, 50 * time.Minute, "e2"}}, true)

	s := &S3{Client: c, Loc: loc, MaxSpan: time.Hour}
	for _, tc := range []struct {
		name     string
		q        Query
		want     []string
		read     int
		damaged  string
		skipped  int
		unlisted string
	}{
		{"no end", Query{Ports: []string{"vm-1"}, From: t0.Add(50 * time.Minute)},
			[]string{"vm-1@51m0s:d-nometa", "vm-1@52m0s:a1", "vm-1@58m0s:a2", "vm-1@59m0s:e1", "vm-1@50m0s:e2", "vm-1@1h5m0s:b1", "vm-1@1h10m0s:b2", "vm-1@2h30m0s:b-late"},
			6, "junk.pcapng", 2, ""},
		{"ends in the next hour", Query{Ports: []string{"vm-1"}, From: t0.Add(50 * time.Minute), To: t0.Add(66 * time.Minute)},
			[]string{"vm-1@51m0s:d-nometa", "vm-1@52m0s:a1", "vm-1@58m0s:a2", "vm-1@59m0s:e1", "vm-1@50m0s:e2", "vm-1@1h5m0s:b1"},
			5, "junk.pcapng", 1, "b-late"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, skipped, err := s.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if skipped != tc.skipped {
				t.Errorf("%d skipped, want %d", skipped, tc.skipped)
			}
			for _, f := range files {
				if tc.unlisted != "" && strings.Contains(f.Name, "T123000") {
					t.Errorf("listed %s, of an hour after the window", f.Name)
				}
			}
			out, sum := run(t, tc.q, false, s)
			have := readBack(t, out)
			// sink-e's packets are out of order in their file: the merge
			// keeps every one; the rest is in time order.
			checkPackets(t, sortedBut(have, "e2"), tc.want)
			if sum.Read != tc.read || len(sum.Damaged) != 1 || !strings.Contains(sum.Damaged[0], tc.damaged) {
				t.Errorf("read %d files (want %d), damaged %q", sum.Read, tc.read, sum.Damaged)
			}
		})
	}
}

// sortedBut returns packets as they came, checking that all but the
// packets tagged skip are in time order.
func sortedBut(have []got, skip string) []got {
	var last time.Duration
	for _, g := range have {
		if g.tag == skip {
			continue
		}
		if g.at < last {
			return append(slices.Clone(have), got{tag: "OUT OF ORDER"})
		}
		last = g.at
	}
	return have
}

// TestFileGone: files removed between the listing and their reading (a
// bucket's lifecycle rule, a ring on disk) are named as gone; the others'
// packets come back and the fetch does not fail.
func TestFileGone(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c := srv.Client(t)
	srv.MakeBucket(t, c, "expiring")
	loc := archive.Location{Bucket: "expiring"}
	ctx := context.Background()
	dir := t.TempDir()
	for i, tag := range []string{"kept", "expired"} {
		name := filepath.Join(dir, tag+".pcapng")
		writeNg(t, name, []pcapgo.NgInterface{ngIface("vm-1", "")}, []pkt{{0, time.Duration(i) * time.Minute, tag}})
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		key := loc.Key("sink-a", t0.Add(time.Duration(i)*time.Minute), t0.Add(time.Duration(i)*time.Minute), name)
		m := archive.Meta{Sink: "sink-a", Format: "pcapng", First: t0, Last: t0, Sources: []string{"vm-1"}}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &loc.Bucket, Key: &key, Body: bytes.NewReader(b), Metadata: m.Headers()}); err != nil {
			t.Fatal(err)
		}
	}
	s := &S3{Client: c, Loc: loc}
	files, _, err := s.List(ctx, Query{})
	if err != nil || len(files) != 2 {
		t.Fatalf("listed %d files: %v", len(files), err)
	}
	expired := strings.TrimPrefix(files[1].Name, "s3://expiring/")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &loc.Bucket, Key: &expired}); err != nil {
		t.Fatal(err)
	}
	// The HEAD of a file gone is no error either.
	if err := s.sources(ctx, files); err != nil {
		t.Fatalf("sources: %v", err)
	}
	localGone := filepath.Join(dir, "expired.pcapng")
	local, _, err := (&Dir{Path: dir}).List(ctx, Query{})
	if err != nil || len(local) != 2 {
		t.Fatalf("listed %d local files: %v", len(local), err)
	}
	if err := os.Remove(localGone); err != nil {
		t.Fatal(err)
	}
	out, sum := run(t, Query{Ports: []string{"vm-1"}}, false, listed(files), listed(local))
	checkPackets(t, readBack(t, out), []string{"vm-1@0s:kept", "vm-1@0s:kept"})
	slices.Sort(sum.Gone)
	if want := []string{localGone, files[1].Name}; !slices.Equal(sum.Gone, want) {
		t.Errorf("gone %q, want %q", sum.Gone, want)
	}
}

// cutReader fails with an unexpected EOF after n bytes, as a connection
// that breaks.
type cutReader struct {
	io.ReadCloser
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := c.ReadCloser.Read(p[:min(len(p), c.n)])
	c.n -= n
	return n, err
}

// TestDownloadResumes: the store's connection breaks twice in the middle
// of a download (a proxy in front of MinIO cuts the responses); the rest
// is asked for from where it stopped and every packet comes back, in
// order, with nothing reported damaged.
func TestDownloadResumes(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	target, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.Contains(r.Request.URL.Path, "_cap.pcapng") && gets.Add(1) <= 2 {
			r.Body = &cutReader{ReadCloser: r.Body, n: 40000}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{Endpoint: front.URL, PathStyle: true, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	srv.MakeBucket(t, c, "flaky")
	loc := archive.Location{Bucket: "flaky"}
	dir := t.TempDir()
	name := filepath.Join(dir, "cap.pcapng")
	var pkts []pkt
	var want []string
	for i := range 3000 {
		tag := fmt.Sprintf("p%04d", i)
		pkts = append(pkts, pkt{0, time.Duration(i) * time.Millisecond, tag})
		want = append(want, got{"vm-1", time.Duration(i) * time.Millisecond, tag}.String())
	}
	writeNg(t, name, []pcapgo.NgInterface{ngIface("vm-1", "")}, pkts)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	key := loc.Key("sink-a", t0, t0.Add(3*time.Second), name)
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &loc.Bucket, Key: &key, Body: bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	out, sum := run(t, Query{}, false, &S3{Client: c, Loc: loc})
	checkPackets(t, readBack(t, out), want)
	if len(sum.Damaged) != 0 || gets.Load() != 3 || sum.Bytes != int64(len(b)) {
		t.Errorf("damaged %q, %d GETs (want 3), %d bytes read of %d", sum.Damaged, gets.Load(), sum.Bytes, len(b))
	}
}
