package pcapout

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Writer takes an engine's packets.
type Writer interface {
	// AddInterface declares a source and returns its interface number.
	AddInterface(Interface) int
	WritePacket(iface int, ts time.Time, data []byte, length int)
	// Filtered counts a packet of iface the filter rejected.
	Filtered(iface int)
	// Flush writes what is buffered; it returns ErrReaderGone once a
	// stream's reader went away.
	Flush() error
	// Close flushes and closes the files, announcing each.
	Close()
	Stats() *Stats
}

// Rotation is the control of when files change: on the clock and on demand.
type Rotation interface {
	// Deadline is when Tick is next due (zero without -G).
	Deadline() time.Time
	// Tick rotates when the period is over; ErrFileLimit ends the capture.
	Tick() error
	// Rotate starts new files now.
	Rotate()
}

// Output is where captured packets go, one Rotator or a Split: a Writer
// whose files rotate and are announced to OnOpen and OnClose subscribers.
type Output interface {
	Writer
	Rotation
	OnOpen(func(OpenedFile))
	OnClose(func(ClosedFile))
}

var (
	_ Output = (*Rotator)(nil)
	_ Output = (*Split)(nil)
)

// Split writes each interface's packets to rotating files of its own: FILE
// becomes FILE with "-NAME" before its extension (--split-by source). All
// files share the options and one set of totals.
type Split struct {
	opts  Options
	stats Stats
	files []*Rotator // nil where the source's first file could not be made
	names map[string]bool
	subs  []func(ClosedFile)
	// openSubs hear of the files each source's Rotator makes.
	openSubs []func(OpenedFile)
}

// NewSplit returns a Split; files appear as sources do.
func NewSplit(opts Options) (*Split, error) {
	if opts.Path == "-" {
		return nil, errors.New("--split-by needs a file name, not standard output")
	}
	return &Split{opts: opts, names: map[string]bool{}}, nil
}

// AddInterface implements Output: it opens the source's first file.
func (s *Split) AddInterface(ifc Interface) int {
	id := len(s.files)
	o := s.opts
	o.Stats = &s.stats
	o.Path = s.path(ifc.Name)
	if id > 0 {
		o.OSDrops = nil // the kernel's drops are reported once, with the first source
	}
	r, err := Open(o)
	if err != nil {
		s.stats.WriteErrors.Add(1)
		o.Logger.Error("cannot open the capture file of a source; dropping its packets", "source", ifc.Name, "err", err)
	} else {
		r.AddInterface(ifc)
		r.subs = slices.Clip(s.subs)
		for _, f := range s.openSubs {
			r.OnOpen(f)
		}
	}
	s.files = append(s.files, r)
	return id
}

// path inserts the source's name before the extension, keeping it usable
// as a file name and unique.
func (s *Split) path(name string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, name)
	// A file name holds 255 bytes; "pf0 to vm-1" names may hold 260.
	clean = clean[:min(len(clean), 128)]
	for base, n := clean, 2; s.names[clean]; n++ {
		clean = fmt.Sprintf("%s-%d", base, n)
	}
	s.names[clean] = true
	dir, file := filepath.Split(s.opts.Path)
	ext := filepath.Ext(file)
	return dir + strings.TrimSuffix(file, ext) + "-" + clean + ext
}

// WritePacket implements Output.
func (s *Split) WritePacket(iface int, ts time.Time, data []byte, length int) {
	if r := s.files[iface]; r != nil {
		r.WritePacket(0, ts, data, length)
		return
	}
	s.stats.Dropped.Add(1)
}

// Filtered implements Output.
func (s *Split) Filtered(iface int) {
	if r := s.files[iface]; r != nil {
		r.Filtered(0)
	}
}

// Flush implements Output: files have no reader to lose.
func (s *Split) Flush() error {
	s.each(func(r *Rotator) { r.Flush() })
	return nil
}

// Rotate implements Output.
func (s *Split) Rotate() { s.each((*Rotator).Rotate) }

// Close implements Output.
func (s *Split) Close() { s.each((*Rotator).Close) }

func (s *Split) each(f func(*Rotator)) {
	for _, r := range s.files {
		if r != nil {
			f(r)
		}
	}
}

// Deadline implements Output: the earliest of the files' -G deadlines.
func (s *Split) Deadline() time.Time {
	var d time.Time
	for _, r := range s.files {
		if r == nil {
			continue
		}
		if rd := r.Deadline(); !rd.IsZero() && (d.IsZero() || rd.Before(d)) {
			d = rd
		}
	}
	return d
}

// Tick implements Output. The first source to reach the -W file limit ends
// the capture.
func (s *Split) Tick() error {
	var first error
	for _, r := range s.files {
		if r == nil {
			continue
		}
		if err := r.Tick(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Stats implements Output.
func (s *Split) Stats() *Stats { return &s.stats }

// OnClose implements Output: f hears of every source's files.
func (s *Split) OnClose(f func(ClosedFile)) {
	s.subs = append(s.subs, f)
	s.each(func(r *Rotator) { r.subs = slices.Clip(s.subs) })
}

// Name returns the file name the sources' names go into.
func (s *Split) Name() string { return s.opts.Path }

// Stream reports false: a split writes files.
func (s *Split) Stream() bool { return false }
