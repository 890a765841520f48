package upload

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/pcapout"
)

// TestSlowUploadNotCut: a multipart upload through a link far slower
// than the stall time allows for the whole transfer (a proxy passing
// 1.5 MB/s per connection, a stall time of 300 ms, a 12 MB file) goes up
// at the first attempt: the stall time bounds silence, not transfers.
func TestSlowUploadNotCut(t *testing.T) {
	srv := sharedServer(t)
	good, loc := newBucket(t, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", srv.Endpoint()[len("http://"):])
			if err != nil {
				c.Close()
				continue
			}
			go throttle(up, c, 1500<<10)
			go throttle(c, up, 1500<<10)
		}
	}()
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{Endpoint: "http://" + ln.Addr().String(), PathStyle: true, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""), Stall: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	start := time.Now()
	files := capture(t, dir, pcapout.FormatPcap, 1, 8000, 1500, u.Handle)
	st := waitUploaded(t, u, 1)
	took := time.Since(start)
	u.Close(time.Second)
	if st.Failures != [NumFailures]uint64{} || took < time.Second {
		t.Fatalf("failures %v after %v (want none, and a transfer of seconds):\n%s", st.Failures, took, log.String())
	}
	t.Logf("%d bytes in %v through the slow link", st.UploadedBytes, took)
	sameContents(t, objects(t, good, loc), files)
}

// throttle copies src to dst at about rate bytes a second.
func throttle(dst, src net.Conn, rate int) {
	defer dst.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
		}
		if err != nil {
			return
		}
	}
}
