package pcapout

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
)

// ClosedFile describes a capture file that is closed and will never be
// written again: what the file-closed event (OnClose) carries.
type ClosedFile struct {
	Name   string
	Format Format
	// First and Last are the first and last packet timestamps, zero when
	// the file holds no packet.
	First, Last time.Time
	// Packets and Bytes are what the file holds, headers included.
	Packets, Bytes uint64
	// Interfaces names the sources with packets in the file, and
	// Captures the capture ids of those that have one, each once.
	Interfaces []string
	Captures   []string
}

// announce tells the subscribers out is closed.
func (r *Rotator) announce(out *output) {
	if len(r.subs) == 0 {
		return
	}
	cf := ClosedFile{
		Name: out.name, Format: r.opts.Format, First: r.first, Last: r.last,
		Packets: uint64(out.records), Bytes: uint64(out.written),
	}
	for _, s := range r.sources {
		if s.delivered > 0 {
			cf.Interfaces = append(cf.Interfaces, s.Name)
			if s.Capture != "" && !slices.Contains(cf.Captures, s.Capture) {
				cf.Captures = append(cf.Captures, s.Capture)
			}
		}
	}
	for _, f := range r.subs {
		f(cf)
	}
}

// madeFile is a file a Rotator made, known by its inode so that only that
// file is ever removed.
type madeFile struct {
	name     string
	dev, ino uint64
	// mtime is the file's modification time as it closed: a compressor
	// (-z gzip) gives it to what it makes of the file.
	mtime time.Time
}

// compressed are the suffixes compressors add to a file's name, and the
// magic numbers their output begins with: a -z command that compressed a
// file of the Keep ring leaves NAME plus one of them, which the ring
// counts and removes in the file's turn.
var compressed = []struct{ suffix, magic string }{
	{".gz", "\x1f\x8b"}, {".bz2", "BZh"}, {".xz", "\xfd7zXZ\x00"}, {".zst", "\x28\xb5\x2f\xfd"},
	{".lz4", "\x04\x22\x4d\x18"}, {".Z", "\x1f\x9d"},
}

// keepStat returns the status and identity of out's file when the Keep
// ring is on.
func (r *Rotator) keepStat(out *output) (st os.FileInfo, dev, ino uint64, ok bool) {
	if r.opts.Keep <= 0 {
		return nil, 0, 0, false
	}
	st, err := out.f.Stat()
	if err != nil {
		return nil, 0, 0, false
	}
	sys := st.Sys().(*syscall.Stat_t)
	return st, uint64(sys.Dev), sys.Ino, true
}

// closing records the modification time of out, about to be closed, in
// the Keep ring.
func (r *Rotator) closing(out *output) {
	st, dev, ino, ok := r.keepStat(out)
	if !ok {
		return
	}
	for i := len(r.kept) - 1; i >= 0; i-- {
		if m := &r.kept[i]; m.dev == dev && m.ino == ino {
			m.mtime = st.ModTime()
			return
		}
	}
}

// made records the file just created for the Keep ring and removes the
// oldest files past it.
func (r *Rotator) made(out *output) {
	_, dev, ino, ok := r.keepStat(out)
	if !ok {
		return
	}
	// A name made again (a restart in the same second) replaced its file.
	r.kept = slices.DeleteFunc(r.kept, func(m madeFile) bool { return m.name == out.name })
	r.kept = append(r.kept, madeFile{name: out.name, dev: dev, ino: ino})
	// What a -z command that was still compressing a removed file made
	// of it since.
	r.ghosts = slices.DeleteFunc(r.ghosts, func(m madeFile) bool { removed, _ := m.removeCompressed(); return removed })
	for len(r.kept) > r.opts.Keep {
		old := r.kept[0]
		r.kept = r.kept[1:]
		original, err := old.remove()
		if err != nil {
			r.opts.Logger.Error("cannot remove an old capture file of the --keep ring", "file", old.name, "err", err)
		}
		if original && !old.mtime.IsZero() {
			r.ghosts = append(r.ghosts, old)
			if len(r.ghosts) > maxGhosts {
				r.ghosts = r.ghosts[1:]
			}
		}
	}
}

// maxGhosts is how many files the Keep ring removed by their own name it
// watches for a compressor's output: a -z command may have been
// compressing them, and its NAME.gz appears once it is done.
const maxGhosts = 8

// adopt takes into the Keep ring, oldest first, the capture files an
// earlier run left under the same name pattern in the same directory, so
// that the disk stays bounded across restarts. Only regular files that
// begin as pcap or pcapng files count, and those a compressor made of
// them (NAME.gz and the like, by their magic number).
func (r *Rotator) adopt() {
	dir, base := filepath.Split(r.opts.Path)
	if hasConversion(dir) {
		return
	}
	if dir == "" {
		dir = "."
	}
	pattern := namePattern(base)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type found struct {
		madeFile
		mtime time.Time
	}
	var old []found
	for _, e := range ents {
		if !e.Type().IsRegular() || !pattern.MatchString(e.Name()) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		st, err := os.Lstat(name)
		if err != nil || !st.Mode().IsRegular() || !isCapture(name) {
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		old = append(old, found{madeFile{name: name, dev: uint64(sys.Dev), ino: sys.Ino, mtime: st.ModTime()}, st.ModTime()})
	}
	if len(old) == 0 {
		return
	}
	slices.SortFunc(old, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range old {
		r.kept = append(r.kept, f.madeFile)
	}
	r.opts.Logger.Info("--keep counts the capture files an earlier run left", "files", len(old), "keep", r.opts.Keep)
}

// namePattern matches the names a file name with strftime conversions
// expands to, with a file number after it.
func namePattern(base string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(base); i++ {
		if base[i] == '%' && i+1 < len(base) {
			i++
			if base[i] == '%' {
				b.WriteString("%")
			} else {
				b.WriteString(".+")
			}
			continue
		}
		b.WriteString(regexp.QuoteMeta(base[i : i+1]))
	}
	b.WriteString("[0-9]*(")
	for _, c := range compressed {
		b.WriteString(regexp.QuoteMeta(c.suffix) + "|")
	}
	b.WriteString(")$")
	return regexp.MustCompile(b.String())
}

// isCapture reports whether name begins with a pcap or pcapng magic
// number, or (NAME.gz and the like) with its compressor's.
func isCapture(name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [6]byte
	n, _ := io.ReadFull(f, m[:])
	for _, c := range compressed {
		if strings.HasSuffix(name, c.suffix) {
			return strings.HasPrefix(string(m[:n]), c.magic)
		}
	}
	format, _ := pcapfile.Sniff(m[:n])
	return format != pcapfile.FormatUnknown
}

// remove unlinks the file if its name still leads to the inode made, or,
// its name gone, what a compressor made of it (a -z command): NAME.gz
// (and the like) on the same file system, with the file's modification
// time, beginning with its compressor's magic number. A file moved away
// or replaced is left alone.
// It reports whether it removed the file itself.
func (m madeFile) remove() (original bool, err error) {
	st, err := os.Lstat(m.name)
	if errors.Is(err, fs.ErrNotExist) {
		_, err = m.removeCompressed()
		return false, err
	}
	if err != nil {
		return false, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || uint64(sys.Dev) != m.dev || sys.Ino != m.ino {
		return false, nil
	}
	return true, os.Remove(m.name)
}

// removeCompressed removes what a compressor made of m, and says whether
// there was such a file.
func (m madeFile) removeCompressed() (bool, error) {
	if m.mtime.IsZero() {
		return false, nil // not seen closing: nothing to know its output by
	}
	for _, c := range compressed {
		name := m.name + c.suffix
		st, err := os.Lstat(name)
		if err != nil || !st.Mode().IsRegular() || !sameTime(st.ModTime(), m.mtime) {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || uint64(sys.Dev) != m.dev || !isCapture(name) {
			continue
		}
		return true, os.Remove(name)
	}
	return false, nil
}

// isStream reports whether name is a fifo or a character device (not
// through a symlink): a target the user named to stream into.
func isStream(name string) bool {
	st, err := os.Lstat(name)
	return err == nil && st.Mode().Type()&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0
}

// sameTime reports whether a compressor's output has the time of the file
// it compressed: to the nanosecond, or to the second when it kept only
// seconds (bzip2).
func sameTime(out, file time.Time) bool {
	return out.Equal(file) || out.Nanosecond() == 0 && out.Unix() == file.Unix()
}
