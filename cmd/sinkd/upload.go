//go:build !minimal

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/archive/upload"
	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

const uploadUsage = `
Object storage (see docs/UPLOAD.md):
  --upload s3://BUCKET/PREFIX  upload every closed file to an S3-compatible
                   store; credentials come from the standard AWS chain
                   (AWS_ACCESS_KEY_ID..., AWS_PROFILE, web identity)
  --upload-endpoint URL   the store, e.g. http://minio:9000 (default: AWS,
                   or AWS_ENDPOINT_URL_S3)
  --upload-region REGION  (default: AWS_REGION, the profile's, us-east-1)
  --upload-path-style     bucket in the path, not the host name (most
                   S3-compatible stores need it)
  --upload-sink-id ID     this sink's name in object keys (default: the
                   host name; up to 64 letters, digits, - _ ., not
                   . or ..); sinks sharing a bucket need distinct ids
  --upload-spool DIR      where closed files wait for the store, found
                   again after a restart (default: .sinkd-spool next to
                   the -w file; keep it on the same file system)
  --upload-spool-size SIZE  bound on the bytes waiting (k/m/g suffixes;
                   default: a quarter of the spool's file system)
  --upload-spool-full POLICY  when the spool is full: drop-oldest (default;
                   the oldest waiting file leaves the queue) or
                   drop-newest (the new file is not queued)
  --upload-delete         remove each file once its upload is verified
  --upload-retry-max DUR  longest wait between failed attempts (default 1m)
  --upload-stall DUR      fail a request whose connection sends and receives
                   nothing for DUR (default 1m): a store that accepts and
                   never answers; an upload making progress is not cut
  --upload-wait DUR       at exit, keep uploading this long (default 30s);
                   what is left waits in the spool for the next start
`

// uploadFlags are the --upload flags.
type uploadFlags struct {
	url       string
	target    archive.Location
	endpoint  string
	region    string
	pathStyle bool
	sinkID    string
	spool     string
	spoolSize int64
	full      upload.FullPolicy
	delete    bool
	retryMax  time.Duration
	stall     time.Duration
	wait      time.Duration
}

func (u *uploadFlags) register(fs *flag.FlagSet) {
	u.retryMax, u.stall, u.wait = time.Minute, time.Minute, 30*time.Second
	fs.StringVar(&u.url, "upload", "", "")
	fs.StringVar(&u.endpoint, "upload-endpoint", "", "")
	fs.StringVar(&u.region, "upload-region", "", "")
	fs.BoolVar(&u.pathStyle, "upload-path-style", false, "")
	fs.StringVar(&u.sinkID, "upload-sink-id", "", "")
	fs.StringVar(&u.spool, "upload-spool", "", "")
	fs.Func("upload-spool-size", "", func(v string) (err error) {
		u.spoolSize, err = units.ParseBytes(v, 1, math.MaxInt64/2, true)
		return err
	})
	fs.Func("upload-spool-full", "", func(v string) (err error) {
		u.full, err = upload.ParseFullPolicy(v)
		return err
	})
	fs.BoolVar(&u.delete, "upload-delete", false, "")
	fs.DurationVar(&u.retryMax, "upload-retry-max", u.retryMax, "")
	fs.DurationVar(&u.stall, "upload-stall", u.stall, "")
	fs.DurationVar(&u.wait, "upload-wait", u.wait, "")
}

// check validates the flags once parsed; out is -w's file.
func (u *uploadFlags) check(out string, set map[string]bool) error {
	if u.url == "" {
		for name := range set {
			if strings.HasPrefix(name, "upload-") {
				return fmt.Errorf("--%s needs --upload s3://BUCKET/PREFIX", name)
			}
		}
		return nil
	}
	var err error
	if u.target, err = archive.ParseURL(u.url); err != nil {
		return err
	}
	if err := archive.CheckEndpoint(u.endpoint); err != nil {
		return err
	}
	switch {
	case out == "-":
		return errors.New("--upload needs files: give -w FILE, not -w -")
	case u.retryMax < time.Second:
		return fmt.Errorf("invalid --upload-retry-max %v: want 1s or more", u.retryMax)
	case u.stall < 100*time.Millisecond:
		return fmt.Errorf("invalid --upload-stall %v: want 100ms or more", u.stall)
	case u.wait < 0:
		return fmt.Errorf("invalid --upload-wait %v", u.wait)
	}
	if u.sinkID == "" {
		if u.sinkID, err = os.Hostname(); err != nil {
			return fmt.Errorf("--upload-sink-id: no host name to default to: %w", err)
		}
	}
	if err := u.target.CheckPrefix(); err != nil {
		return fmt.Errorf("--upload: %w", err)
	}
	if err := archive.CheckSinkID(u.sinkID); err != nil {
		return fmt.Errorf("--upload-sink-id: %w", err)
	}
	if u.spool == "" {
		u.spool = filepath.Join(filepath.Dir(out), ".sinkd-spool")
	}
	return nil
}

// uploader ships closed files with package upload.
type uploader struct {
	*upload.Uploader
	flags  *uploadFlags
	logger *slog.Logger
}

func (u uploader) collector() prometheus.Collector { return metrics.NewUploadCollector(u.Stats) }

func (u uploader) close(w io.Writer, wait time.Duration, spool string) {
	printUploadSummary(w, u.Close(wait), spool)
}

func (u uploader) giveSpool(uid, gid int) error { return upload.GiveSpool(u.flags.spool, uid, gid) }

func (u uploader) open() error {
	if err := u.Start(); err != nil {
		return err
	}
	st := u.Stats()
	u.logger.Info("uploading closed files", "to", u.flags.target.String(), "sink_id", u.flags.sinkID, "spool", u.flags.spool,
		"spool_limit_bytes", st.SpoolLimit, "when_full", u.flags.full.String(), "waiting", st.PendingFiles)
	return nil
}

// start makes the uploader; it touches no file until open. then, when
// set, gets each closed file once the spool holds a copy of its own.
func (u *uploadFlags) start(logger *slog.Logger, then func(pcapout.ClosedFile)) (shipper, error) {
	newClient := func(ctx context.Context) (*s3.Client, error) {
		return archive.NewClient(ctx, archive.ClientOptions{
			Endpoint: u.endpoint, Region: u.region, PathStyle: u.pathStyle, Stall: u.stall,
			// The uploader retries with its own backoff and counts each try.
			MaxAttempts: 1,
		})
	}
	client, err := newClient(context.Background())
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	up := upload.New(upload.Config{
		Client: client, Target: u.target, Spool: u.spool, SpoolLimit: u.spoolSize, Full: u.full,
		Delete: u.delete, Sink: u.sinkID, Host: host, MaxBackoff: u.retryMax, Refresh: newClient, Then: then, Logger: logger,
	})
	return uploader{Uploader: up, flags: u, logger: logger}, nil
}

// printUploadSummary says what was uploaded and what waits.
func printUploadSummary(w io.Writer, s upload.Stats, spool string) {
	var failed uint64
	for _, n := range s.Failures {
		failed += n
	}
	fmt.Fprintf(w, "%d files uploaded (%d bytes), %d failed attempts\n", s.UploadedFiles, s.UploadedBytes, failed)
	if s.PendingFiles > 0 {
		fmt.Fprintf(w, "%d files (%d bytes) wait in %s for the next start\n", s.PendingFiles, s.PendingBytes, spool)
	}
	if s.DroppedFiles > 0 {
		fmt.Fprintf(w, "%d files (%d bytes) not uploaded: dropped by the full spool, or they could not be spooled or read (the log names each)\n", s.DroppedFiles, s.DroppedBytes)
	}
}
