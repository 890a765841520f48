// Package archive is the layout of capture files in S3-compatible object
// storage, shared by sinkd's uploader and by dpcap fetch: the s3:// URL, the
// client, the object keys and the metadata each object carries.
//
// Several sinks share one bucket and prefix. An object's key says when its
// packets were captured and by which sink:
//
//	PREFIX/YYYY/MM/DD/HH/SINK/FIRST_LAST_NAME
//
// where YYYY/MM/DD/HH is the hour (UTC) of the file's first packet, SINK the
// sink's id, FIRST and LAST the first and last packet's time (UTC,
// 20061102T150405.999999999Z) and NAME the name sinkd gave the file. Listing
// the hours of a window finds every file that may hold its packets without
// reading any of them; the metadata (Meta) says which ports a file holds.
package archive

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Location is a bucket and a key prefix: s3://BUCKET/PREFIX.
type Location struct {
	Bucket string
	// Prefix has no leading or trailing slash; it may be empty.
	Prefix string
}

// ParseURL parses s3://BUCKET[/PREFIX].
func ParseURL(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return Location{}, fmt.Errorf("invalid location %q: want s3://BUCKET/PREFIX", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return Location{}, fmt.Errorf("invalid bucket name %q in %q: want 3-63 lower-case letters, digits, '.' and '-'", bucket, s)
	}
	prefix = strings.Trim(prefix, "/")
	if strings.Contains(prefix, "//") {
		return Location{}, fmt.Errorf("invalid prefix %q in %q: empty path segment", prefix, s)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// IsURL reports whether s names an object store location rather than a
// local path.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '.') && i > 0 && i < len(b)-1:
		default:
			return false
		}
	}
	return true
}

// String returns the s3:// URL.
func (l Location) String() string {
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// join puts the prefix before rel.
func (l Location) join(rel string) string {
	if l.Prefix == "" {
		return rel
	}
	return l.Prefix + "/" + rel
}

// Root is the key prefix of every file: the prefix and "/", or "".
func (l Location) Root() string {
	if l.Prefix == "" {
		return ""
	}
	return l.Prefix + "/"
}

// timeLayout is how FIRST and LAST appear in a key: sortable, UTC,
// nanoseconds, no characters that need escaping.
const timeLayout = "20060102T150405.000000000Z"

// HourPrefix is the key prefix of the files whose first packet falls in
// t's hour, ending in "/".
func (l Location) HourPrefix(t time.Time) string {
	return l.join(t.UTC().Format("2006/01/02/15") + "/")
}

// Key returns the object key of a file: see the package comment.
func (l Location) Key(sink string, first, last time.Time, name string) string {
	return l.join(fmt.Sprintf("%s/%s/%s_%s_%s", first.UTC().Format("2006/01/02/15"), SafeName(sink),
		first.UTC().Format(timeLayout), last.UTC().Format(timeLayout), SafeName(path.Base(name))))
}

// KeyInfo is what a key says about its file.
type KeyInfo struct {
	Sink        string
	First, Last time.Time
	Name        string
}

// ParseKey reads a key made by Key, with or without its prefix.
func ParseKey(key string) (KeyInfo, error) {
	dir, base := path.Split(key)
	sink := path.Base(strings.TrimSuffix(dir, "/"))
	ki, err := ParseName(base)
	if err != nil {
		return ki, fmt.Errorf("key %q: %w", key, err)
	}
	if sink == "." || sink == "" {
		return ki, fmt.Errorf("key %q: no sink id", key)
	}
	ki.Sink = sink
	return ki, nil
}

// ParseName reads the last element of a key, FIRST_LAST_NAME; a copy of a
// bucket on disk keeps these names.
func ParseName(base string) (KeyInfo, error) {
	var ki KeyInfo
	parts := strings.SplitN(base, "_", 3)
	if len(parts) != 3 || parts[2] == "" {
		return ki, errors.New("not FIRST_LAST_NAME")
	}
	var err error
	if ki.First, err = time.Parse(timeLayout, parts[0]); err != nil {
		return ki, fmt.Errorf("first packet time %q: %w", parts[0], err)
	}
	if ki.Last, err = time.Parse(timeLayout, parts[1]); err != nil {
		return ki, fmt.Errorf("last packet time %q: %w", parts[1], err)
	}
	ki.Name = parts[2]
	return ki, nil
}

// MaxSinkID is the longest sink id.
const MaxSinkID = 64

// CheckSinkID reports whether id can name a sink in object keys: up to
// MaxSinkID letters, digits, '-', '_' and '.', and not "." or "..", a
// path segment that stores refuse (MinIO answers 400 to every upload).
func CheckSinkID(id string) error {
	if id == "" || SafeName(id) != id || len(id) > MaxSinkID || id == "." || id == ".." {
		return fmt.Errorf("invalid sink id %q: want up to %d letters, digits, '-', '_' and '.', not \".\" or \"..\"", id, MaxSinkID)
	}
	return nil
}

// maxPrefix bounds a prefix to leave room in S3's 1024-byte keys for the
// rest of the layout (about 180 bytes) and a file name.
const maxPrefix = 512

// CheckPrefix reports whether objects can be written under l's prefix:
// stores refuse keys with a "." or ".." segment (MinIO: 400), keys that
// are not UTF-8 and keys longer than 1024 bytes, and a control character
// in a key breaks the XML listings that find it again.
func (l Location) CheckPrefix() error {
	if len(l.Prefix) > maxPrefix {
		return fmt.Errorf("invalid prefix in %s: longer than %d bytes", l, maxPrefix)
	}
	if !utf8.ValidString(l.Prefix) {
		return fmt.Errorf("invalid prefix %q: not UTF-8", l.Prefix)
	}
	for _, r := range l.Prefix {
		if unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("invalid prefix %q: control character or backslash", l.Prefix)
		}
	}
	if l.Prefix == "" {
		return nil
	}
	for _, seg := range strings.Split(l.Prefix, "/") {
		if s := strings.TrimSpace(seg); s == "" || s == "." || s == ".." {
			return fmt.Errorf("invalid prefix %q: empty, \".\" or \"..\" path segment", l.Prefix)
		}
	}
	return nil
}

// SafeName keeps a sink id or a file name to the characters that need no
// escaping in a key or a URL, so that keys stay readable and listable.
func SafeName(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

// escape makes a metadata value US-ASCII, as S3 requires.
func escape(s string) string { return url.PathEscape(s) }

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
