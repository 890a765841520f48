package pcapout

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
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
	// Interfaces names the sources with packets in the file.
	Interfaces []string
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
}

// made records the file just created for the Keep ring and removes the
// oldest files past it.
func (r *Rotator) made(out *output) {
	if r.opts.Keep <= 0 {
		return
	}
	st, err := out.f.Stat()
	if err != nil {
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	r.kept = append(r.kept, madeFile{out.name, uint64(sys.Dev), sys.Ino})
	for len(r.kept) > r.opts.Keep {
		old := r.kept[0]
		r.kept = r.kept[1:]
		if err := old.remove(); err != nil {
			r.opts.Logger.Error("cannot remove an old capture file of the --keep ring", "file", old.name, "err", err)
		}
	}
}

// remove unlinks the file if its name still leads to the inode made: a
// file moved away (by a -z command) or replaced is left alone.
func (m madeFile) remove() error {
	st, err := os.Lstat(m.name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || uint64(sys.Dev) != m.dev || sys.Ino != m.ino {
		return nil
	}
	return os.Remove(m.name)
}

// isStream reports whether name is a fifo or a character device (not
// through a symlink): a target the user named to stream into.
func isStream(name string) bool {
	st, err := os.Lstat(name)
	return err == nil && st.Mode().Type()&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0
}
