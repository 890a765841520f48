package archive

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Meta describes one capture file. It travels as the object's user
// metadata (x-amz-meta-dpcap-*), so a HEAD request tells what a file holds.
type Meta struct {
	Sink string `json:"sink"` // the sink's id (--upload-sink-id)
	Host string `json:"host"` // the host name of the sink
	// File is the path sinkd wrote the file to.
	File   string `json:"file"`
	Format string `json:"format"` // "pcap" or "pcapng"
	// First and Last are the first and last packet's capture time; a
	// file without packets has the time it was closed in both.
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	Packets uint64    `json:"packets"`
	Bytes   uint64    `json:"bytes"` // the file's size
	// Sources are the names of the file's sources: the pcapng interface
	// names, the ports of the port map where one names them.
	Sources []string `json:"sources"`
	// SourcesTruncated says Sources lists only some of them: S3 allows
	// 2 KiB of metadata.
	SourcesTruncated bool `json:"sources_truncated,omitempty"`
	// Captures are the ids of the dpcap captures whose copies the file
	// holds (the port map's, in pcapng interface descriptions), each
	// once; dpcap fetch --capture reads only files that list its id.
	Captures []string `json:"captures,omitempty"`
}

// The metadata names, without S3's x-amz-meta- prefix.
const (
	metaSink      = "dpcap-sink"
	metaHost      = "dpcap-host"
	metaFile      = "dpcap-file"
	metaFormat    = "dpcap-format"
	metaFirst     = "dpcap-first"
	metaLast      = "dpcap-last"
	metaPackets   = "dpcap-packets"
	metaBytes     = "dpcap-bytes"
	metaSources   = "dpcap-sources"
	metaTruncated = "dpcap-sources-truncated"
	metaCaptures  = "dpcap-captures"
)

// MetaLimit is S3's bound on an object's user metadata: the bytes of every
// name and value. Names are counted with their x-amz-meta- prefix, as some
// stores count them.
const MetaLimit = 2048

// fileBudget bounds the encoded path of the file; what is left after the
// fixed fields goes to the source list.
const fileBudget = 512

const metaPrefix = "x-amz-meta-"

// Key returns m's object key in l.
func (m Meta) Key(l Location) string { return l.Key(m.Sink, m.First, m.Last, m.File) }

// Headers returns m as S3 user metadata. Values are percent-encoded: S3
// takes US-ASCII only, and port names may be anything.
func (m Meta) Headers() map[string]string {
	h := map[string]string{
		metaSink:    cut(escape(m.Sink), 128),
		metaHost:    cut(escape(m.Host), 256),
		metaFile:    escape(m.File),
		metaFormat:  cut(m.Format, 16),
		metaFirst:   m.First.UTC().Format(time.RFC3339Nano),
		metaLast:    m.Last.UTC().Format(time.RFC3339Nano),
		metaPackets: strconv.FormatUint(m.Packets, 10),
		metaBytes:   strconv.FormatUint(m.Bytes, 10),
	}
	if len(h[metaFile]) > fileBudget {
		// A path this long is for people: its end says most.
		h[metaFile] = cut(escape(".../"+path.Base(m.File)), fileBudget)
	}
	if c := capturesHeader(m.Captures); c != "" {
		// Before the sources: fetch --capture trusts a file's list.
		h[metaCaptures] = c
	}
	budget := MetaLimit - len(metaPrefix+metaSources) - len(metaPrefix+metaTruncated+"true")
	for k, v := range h {
		budget -= len(metaPrefix) + len(k) + len(v)
	}
	var b strings.Builder
	truncated := m.SourcesTruncated
	for _, s := range m.Sources {
		e := escape(s)
		if b.Len()+len(e)+1 > budget {
			truncated = true
			break
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e)
	}
	h[metaSources] = b.String()
	if truncated {
		h[metaTruncated] = "true"
	}
	return h
}

// captureBudget bounds the capture ids' header: a file holds the copies
// of a capture or two (one started after another while the file was
// open); past the budget, the header says "*", any capture, and fetch
// reads the file.
const captureBudget = 256

func capturesHeader(ids []string) string {
	v := strings.Join(ids, ",")
	if len(v) > captureBudget || strings.ContainsFunc(v, func(r rune) bool { return r == '*' || r > 0x7e || r < 0x21 }) {
		return "*"
	}
	return v
}

// HasCapture tells whether the file may hold copies of capture id: it
// lists the id, or more captures than its metadata could list.
func (m Meta) HasCapture(id string) bool {
	return slices.Contains(m.Captures, id) || slices.Contains(m.Captures, "*")
}

// cut shortens a percent-encoded value to at most n bytes, never inside an
// escape.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	if i := strings.LastIndexByte(s, '%'); i >= 0 && i > len(s)-3 {
		s = s[:i]
	}
	return s
}

// ParseMeta reads metadata written by Headers. Names are matched without
// regard to case, as stores differ in what they return.
func ParseMeta(h map[string]string) (Meta, error) {
	get := func(k string) string {
		for hk, v := range h {
			if strings.EqualFold(hk, k) {
				return v
			}
		}
		return ""
	}
	m := Meta{
		Sink:             unescape(get(metaSink)),
		Host:             unescape(get(metaHost)),
		File:             unescape(get(metaFile)),
		Format:           get(metaFormat),
		SourcesTruncated: get(metaTruncated) == "true",
	}
	if m.Sink == "" {
		return m, fmt.Errorf("no %s metadata: not uploaded by sinkd", metaSink)
	}
	var err error
	if m.First, err = time.Parse(time.RFC3339Nano, get(metaFirst)); err != nil {
		return m, fmt.Errorf("metadata %s: %w", metaFirst, err)
	}
	if m.Last, err = time.Parse(time.RFC3339Nano, get(metaLast)); err != nil {
		return m, fmt.Errorf("metadata %s: %w", metaLast, err)
	}
	if m.Packets, err = strconv.ParseUint(get(metaPackets), 10, 64); err != nil {
		return m, fmt.Errorf("metadata %s: %w", metaPackets, err)
	}
	if m.Bytes, err = strconv.ParseUint(get(metaBytes), 10, 64); err != nil {
		return m, fmt.Errorf("metadata %s: %w", metaBytes, err)
	}
	if c := get(metaCaptures); c != "" {
		m.Captures = strings.Split(c, ",")
	}
	if s := get(metaSources); s != "" {
		for _, e := range strings.Split(s, ",") {
			m.Sources = append(m.Sources, unescape(e))
		}
	}
	return m, nil
}

// ContentType is the media type of a capture format.
func ContentType(format string) string {
	if format == "pcapng" {
		return "application/x-pcapng"
	}
	return "application/vnd.tcpdump.pcap"
}
