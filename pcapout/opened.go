package pcapout

import (
	"syscall"
)

// OpenedFile describes a capture file just made, before any packet is
// written to it: what the file-opened event (OnOpen) carries.
type OpenedFile struct {
	Name   string
	Format Format
	// Dev and Ino identify the file made, whatever later happens to its
	// name.
	Dev, Ino uint64
}

// OnOpen subscribes f to the file-opened event: f is called, on the
// writer's goroutine, after each file is made and before packets go to
// it, and at once for the file open now. It must not block for long.
// Streams announce nothing.
func (r *Rotator) OnOpen(f func(OpenedFile)) {
	r.openSubs = append(r.openSubs, f)
	if r.out != nil && r.out.seekable {
		if of, ok := r.openedFile(r.out); ok {
			f(of)
		}
	}
}

// announceOpen tells the subscribers out was made.
func (r *Rotator) announceOpen(out *output) {
	if len(r.openSubs) == 0 {
		return
	}
	of, ok := r.openedFile(out)
	if !ok {
		return
	}
	for _, f := range r.openSubs {
		f(of)
	}
}

func (r *Rotator) openedFile(out *output) (OpenedFile, bool) {
	st, err := out.f.Stat()
	if err != nil {
		r.opts.Logger.Error("cannot stat the capture file just made", "file", out.name, "err", err)
		return OpenedFile{}, false
	}
	sys := st.Sys().(*syscall.Stat_t)
	return OpenedFile{Name: out.name, Format: r.opts.Format, Dev: uint64(sys.Dev), Ino: sys.Ino}, true
}

// OnOpen implements Output: f hears of every source's files, those open
// now included.
func (s *Split) OnOpen(f func(OpenedFile)) {
	s.openSubs = append(s.openSubs, f)
	s.each(func(r *Rotator) { r.OnOpen(f) })
}
