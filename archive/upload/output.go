package upload

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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/output"
)

// usage is --upload's section of sinkd --help.
const usage = `
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
  --upload-spool-full POLICY  when the spool is full: {{default "upload-spool-full"}} (default;
                   the oldest waiting file leaves the queue) or
                   drop-newest (the new file is not queued)
  --upload-delete         remove each file once its upload is verified
  --upload-retry-max DUR  longest wait between failed attempts (default {{default "upload-retry-max"}})
  --upload-stall DUR      fail a request whose connection sends and receives
                   nothing for DUR (default {{default "upload-stall"}}): a store that accepts and
                   never answers; an upload making progress is not cut
  --upload-wait DUR       at exit, keep uploading this long (default {{default "upload-wait"}});
                   what is left waits in the spool for the next start
`

// The defaults of sinkd's --upload flags.
const (
	DefaultRetryMax = time.Minute
	DefaultStall    = time.Minute
	DefaultWait     = 30 * time.Second
)

func init() {
	output.Register(output.Kind{Name: "upload", Usage: usage, Flags: defineFlags})
}

// Set implements flag.Value: --upload-spool-full.
func (p *FullPolicy) Set(s string) (err error) {
	*p, err = ParseFullPolicy(s)
	return err
}

// flags are sinkd's --upload flags.
type flags struct {
	url       string
	target    archive.Location
	endpoint  string
	region    string
	pathStyle bool
	sinkID    string
	spool     string
	spoolSize int64
	full      FullPolicy
	delete    bool
	retryMax  time.Duration
	stall     time.Duration
	wait      time.Duration
}

func defineFlags(fs *flag.FlagSet) output.Flags {
	u := &flags{}
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
	fs.Var(&u.full, "upload-spool-full", "")
	fs.BoolVar(&u.delete, "upload-delete", false, "")
	fs.DurationVar(&u.retryMax, "upload-retry-max", DefaultRetryMax, "")
	fs.DurationVar(&u.stall, "upload-stall", DefaultStall, "")
	fs.DurationVar(&u.wait, "upload-wait", DefaultWait, "")
	return u
}

// Check implements output.Flags.
func (u *flags) Check(out string, set map[string]bool) (bool, error) {
	if u.url == "" {
		for name := range set {
			if strings.HasPrefix(name, "upload-") {
				return false, fmt.Errorf("--%s needs --upload s3://BUCKET/PREFIX", name)
			}
		}
		return false, nil
	}
	var err error
	if u.target, err = archive.ParseURL(u.url); err != nil {
		return false, err
	}
	if err := archive.CheckEndpoint(u.endpoint); err != nil {
		return false, err
	}
	switch {
	case out == "-":
		return false, errors.New("--upload needs files: give -w FILE, not -w -")
	case u.retryMax < time.Second:
		return false, fmt.Errorf("invalid --upload-retry-max %v: want 1s or more", u.retryMax)
	case u.stall < 100*time.Millisecond:
		return false, fmt.Errorf("invalid --upload-stall %v: want 100ms or more", u.stall)
	case u.wait < 0:
		return false, fmt.Errorf("invalid --upload-wait %v", u.wait)
	}
	if u.sinkID == "" {
		if u.sinkID, err = os.Hostname(); err != nil {
			return false, fmt.Errorf("--upload-sink-id: no host name to default to: %w", err)
		}
	}
	if err := u.target.CheckPrefix(); err != nil {
		return false, fmt.Errorf("--upload: %w", err)
	}
	if err := archive.CheckSinkID(u.sinkID); err != nil {
		return false, fmt.Errorf("--upload-sink-id: %w", err)
	}
	if u.spool == "" {
		u.spool = filepath.Join(filepath.Dir(out), ".sinkd-spool")
	}
	return true, nil
}

// New implements output.Flags: it makes the store's client and the
// Uploader, which touches no file until Start. When an output after it may
// change the files (-z), each goes on once the spool holds a copy of its
// own.
func (u *flags) New(env output.Env) (output.Consumer, error) {
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
	cfg := Config{
		Client: client, Target: u.target, Spool: u.spool, SpoolLimit: u.spoolSize, Full: u.full,
		Delete: u.delete, Sink: u.sinkID, Host: host, MaxBackoff: u.retryMax, Refresh: newClient, Logger: env.Logger,
	}
	c := consumer{flags: u, logger: env.Logger}
	if env.Changes {
		cfg.Then = env.Next
	} else {
		c.next = env.Next
	}
	c.Uploader = New(cfg)
	return c, nil
}

// consumer is the Uploader as one of sinkd's outputs.
type consumer struct {
	*Uploader
	flags  *flags
	logger *slog.Logger
	// next takes each file at once, when no output after this one changes
	// files.
	next func(pcapout.ClosedFile)
}

var (
	_ output.Consumer = consumer{}
	_ output.Opener   = consumer{}
	_ output.Drainer  = consumer{}
	_ output.Chowner  = consumer{}
	_ output.Measured = consumer{}
)

// Closed implements output.Consumer: the file is queued for upload.
func (c consumer) Closed(f pcapout.ClosedFile) {
	c.Handle(f)
	if c.next != nil {
		c.next(f)
	}
}

// Start implements output.Consumer: it opens the spool, as -Z's user, so
// that nothing in it, which that user holds, is ever read or followed as
// root.
func (c consumer) Start() error {
	if err := c.Uploader.Start(); err != nil {
		return err
	}
	st := c.Stats()
	c.logger.Info("uploading closed files", "to", c.flags.target.String(), "sink_id", c.flags.sinkID, "spool", c.flags.spool,
		"spool_limit_bytes", st.SpoolLimit, "when_full", c.flags.full.String(), "waiting", st.PendingFiles)
	return nil
}

// Drain implements output.Drainer.
func (c consumer) Drain() { c.PassedOn() }

// Chown implements output.Chowner: it makes the spool directory for -Z's
// user, without looking into it.
func (c consumer) Chown(uid, gid int) error { return GiveSpool(c.flags.spool, uid, gid) }

// Collector implements output.Measured.
func (c consumer) Collector() prometheus.Collector { return NewCollector(c.Stats) }

// Stop implements output.Consumer: it uploads for up to --upload-wait,
// then says what was uploaded and what waits in the spool.
func (c consumer) Stop(w io.Writer) {
	s := c.Close(c.flags.wait)
	var failed uint64
	for _, n := range s.Failures {
		failed += n
	}
	fmt.Fprintf(w, "%d files uploaded (%d bytes), %d failed attempts\n", s.UploadedFiles, s.UploadedBytes, failed)
	if s.PendingFiles > 0 {
		fmt.Fprintf(w, "%d files (%d bytes) wait in %s for the next start\n", s.PendingFiles, s.PendingBytes, c.flags.spool)
	}
	if s.DroppedFiles > 0 {
		fmt.Fprintf(w, "%d files (%d bytes) not uploaded: dropped by the full spool, or they could not be spooled or read (the log names each)\n", s.DroppedFiles, s.DroppedBytes)
	}
}
