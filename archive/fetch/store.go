package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
)

// File is a capture file that may hold packets of a query.
type File struct {
	// Name is the object's URL or the file's path.
	Name string
	// Sink is the id of the sink that wrote it, when known.
	Sink string
	// First is the time of its first packet (no packet is older); Last,
	// when not zero, of its last.
	First, Last time.Time
	Size        int64
	// Sources are the names of its sources; nil when unknown.
	Sources []string
	// Partial says Sources may miss some names.
	Partial bool
	// Captures are the capture ids of its copies (archive.Meta), nil
	// when unknown; known, a file without the query's is not read.
	Captures []string
	// Unordered says the file's packets may not be in time order: its
	// last packet is older than its first (the sink's clock stepped
	// back). Its First and Last are then zero: it may hold any time.
	Unordered bool
	open      func(ctx context.Context) (io.ReadCloser, error)
}

// Source lists capture files: an S3 location or a local directory.
type Source interface {
	// List returns the files that may hold packets of q; skipped counts
	// the files it looked at and left out (not captures, other layouts).
	List(ctx context.Context, q Query) (files []File, skipped int, err error)
}

// S3 lists the files sinkd uploaded to a location (package archive's
// layout).
type S3 struct {
	Client *s3.Client
	Loc    archive.Location
	// MaxSpan is how long before a window's start a file may have begun
	// and still reach into it: the hours listed start that much earlier.
	MaxSpan time.Duration
}

// List implements Source. Keys give each file's time range; with ports
// to match, a HEAD of each file in the window gives its sources.
//
// Keys sort by the hour of their file's first packet, so one listing
// starting at the earliest hour a file of the window can begin in (MaxSpan
// before it) and stopping after the window's last hour finds them all.
// Without --to it runs to the end: files of a sink whose clock is ahead of
// this host's are found too.
func (s *S3) List(ctx context.Context, q Query) ([]File, int, error) {
	// URL-encoded keys: XML 1.0 cannot carry a control character, so one
	// key holding ESC would fail every listing of the prefix.
	in := &s3.ListObjectsV2Input{Bucket: &s.Loc.Bucket, Prefix: aws.String(s.Loc.Root()), EncodingType: types.EncodingTypeUrl}
	if !q.From.IsZero() {
		in.StartAfter = aws.String(strings.TrimSuffix(s.Loc.HourPrefix(q.From.Add(-s.MaxSpan)), "/"))
	}
	var last string // the window's last hour
	if !q.To.IsZero() {
		last = s.Loc.HourPrefix(q.To)
	}
	var files []File
	skipped := 0
	pager := s3.NewListObjectsV2Paginator(s.Client, in)
pages:
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", s.Loc, err)
		}
		for _, o := range page.Contents {
			key, err := url.QueryUnescape(aws.ToString(o.Key))
			if err != nil {
				return nil, 0, fmt.Errorf("list %s: key %q: %w", s.Loc, aws.ToString(o.Key), err)
			}
			if last != "" && key > last && !strings.HasPrefix(key, last) {
				break pages
			}
			ki, err := archive.ParseKey(key)
			if err != nil {
				skipped++
				continue
			}
			f := File{Name: "s3://" + s.Loc.Bucket + "/" + key, Sink: ki.Sink, Size: aws.ToInt64(o.Size)}
			f.setRange(ki.First, ki.Last)
			f.open = s.opener(key)
			if q.overlaps(f) {
				files = append(files, f)
			}
		}
	}
	if len(q.Ports) > 0 || q.Capture != "" {
		if err := s.sources(ctx, files); err != nil {
			return nil, 0, err
		}
	}
	return files, skipped, nil
}

// sources reads each file's metadata, a few requests at a time.
func (s *S3) sources(ctx context.Context, files []File) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, 8)
	)
	for i := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func(f *File) {
			defer func() { <-sem; wg.Done() }()
			key := strings.TrimPrefix(f.Name, "s3://"+s.Loc.Bucket+"/")
			h, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Loc.Bucket, Key: &key})
			if err != nil && gone(err) {
				return // the merge finds it gone and says so
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("head %s: %w", f.Name, err)
				}
				mu.Unlock()
				return
			}
			if m, err := archive.ParseMeta(h.Metadata); err == nil {
				f.Sources, f.Partial = m.Sources, m.SourcesTruncated
				if f.Sources == nil {
					f.Sources = []string{}
				}
				f.Captures = m.Captures
				if f.Captures == nil {
					f.Captures = []string{}
				}
			}
		}(&files[i])
	}
	wg.Wait()
	return first
}

func (s *S3) opener(key string) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		r := &resuming{ctx: ctx, s: s, key: key}
		if err := r.get(); err != nil {
			return nil, err
		}
		return r, nil
	}
}

// resumeTries is how often in a row an object's download is asked again
// from where it broke off.
const resumeTries = 3

// resuming reads an object, asking for the rest (a range of the same
// version, If-Match its ETag) when the connection breaks mid-way: a long
// download does not lose the file's later packets to one network error.
type resuming struct {
	ctx   context.Context
	s     *S3
	key   string
	body  io.ReadCloser
	etag  *string
	off   int64
	tries int
}

func (r *resuming) get() error {
	in := &s3.GetObjectInput{Bucket: &r.s.Loc.Bucket, Key: &r.key, IfMatch: r.etag}
	if r.off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.off))
	}
	out, err := r.s.Client.GetObject(r.ctx, in)
	if err != nil {
		return fmt.Errorf("get s3://%s/%s: %w", r.s.Loc.Bucket, r.key, err)
	}
	r.body, r.etag = out.Body, out.ETag
	return nil
}

func (r *resuming) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.tries = 0
		}
		if err == nil || errors.Is(err, io.EOF) || r.ctx.Err() != nil || r.tries >= resumeTries {
			return n, err
		}
		r.body.Close()
		r.tries++
		if gerr := r.get(); gerr != nil {
			r.body = io.NopCloser(errReader{fmt.Errorf("%w (resuming at byte %d: %w)", err, r.off, gerr)})
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resuming) Close() error { return r.body.Close() }

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Dir lists the capture files under a directory (sinkd's rotated files, or
// a copy of a bucket), skipping hidden directories such as sinkd's spool.
type Dir struct {
	Path string
}

// List implements Source. A file's name gives its time range when it
// follows the bucket layout; otherwise its first packet gives the start,
// and its modification time bounds the end (a file is closed after its
// last packet was written).
func (d *Dir) List(ctx context.Context, q Query) ([]File, int, error) {
	var files []File
	skipped := 0
	// A trailing separator makes WalkDir follow a root that is a
	// symbolic link to the directory; links below it are not followed.
	root := strings.TrimRight(d.Path, string(filepath.Separator)) + string(filepath.Separator)
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			if p != root && strings.HasPrefix(de.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || strings.HasPrefix(de.Name(), ".") {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		f := File{Name: p, Size: fi.Size(), Last: fi.ModTime()}
		f.open = func(context.Context) (io.ReadCloser, error) { return os.Open(p) }
		if ki, err := archive.ParseName(de.Name()); err == nil {
			f.setRange(ki.First, ki.Last)
			f.Sink = path.Base(filepath.ToSlash(filepath.Dir(p)))
		} else if first, err := firstPacket(p); err != nil {
			skipped++
			return nil
		} else if !first.IsZero() {
			// A copy may have a modification time older than its
			// packets: then nothing bounds the file's range.
			f.setRange(first, f.Last)
		}
		if q.overlaps(f) {
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", d.Path, err)
	}
	return files, skipped, nil
}

// firstPacket returns the time of a capture file's first packet.
func firstPacket(name string) (time.Time, error) {
	f, err := os.Open(name)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f) // gzip-compressed or not (sinkd -z gzip)
	if err != nil {
		return time.Time{}, err
	}
	_, ci, _, err := r.ReadPacket()
	var rerr *pcapfile.RecordError
	if errors.Is(err, io.EOF) || errors.As(err, &rerr) {
		// Empty, or a capture broken before its first packet: list it
		// anyway, the merge names it damaged.
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return ci.Timestamp, nil
}

// gone reports whether err says a listed file no longer exists.
func gone(err error) bool {
	switch archive.ErrorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return errors.Is(err, fs.ErrNotExist)
}

// setRange sets f's time range from its first and last packet.
func (f *File) setRange(first, last time.Time) {
	if last.Before(first) {
		f.First, f.Last, f.Unordered = time.Time{}, time.Time{}, true
		return
	}
	f.First, f.Last = first, last
}

// matches reports whether f may hold packets of q: of its capture, and
// of one of its ports.
func (f File) matches(q Query) bool {
	if q.Capture != "" && f.Captures != nil && !(archive.Meta{Captures: f.Captures}).HasCapture(q.Capture) {
		return false
	}
	return f.matchesPorts(q.Ports)
}

// matchesPorts reports whether f may hold packets of one of ports.
func (f File) matchesPorts(ports []string) bool {
	if len(ports) == 0 || f.Sources == nil || f.Partial {
		return true
	}
	for _, s := range f.Sources {
		if slices.Contains(ports, s) {
			return true
		}
	}
	return false
}
