package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// spool is the on-disk queue of files waiting for the store:
//
//	DIR/lock          held (flock) by the sinkd using the spool
//	DIR/files/ID      a hard link to (or a copy of) a capture file
//	DIR/meta/ID.json  what is known about it (sidecar)
//	DIR/tmp/          copies in progress
//
// ID is the time the file opened (16 hex digits of Unix nanoseconds), "-"
// and the file's base name, so the queue's order survives a restart. A
// file is linked as it opens, before a packet goes to it: the link keeps
// what it holds when sinkd is killed while writing it, even once a -W
// ring or the next run made a new file under its name. Closing it only
// queues it; its sidecar and the fsyncs happen later, in the background:
// a file whose sidecar was not written yet (the one being written, above
// all) is repaired and described from its content at start-up. On another
// file system, a sidecar naming the file (Open) stands for the link until
// the file closes and is copied.
//
// The spool belongs to the user sinkd runs as, who opens and recovers it:
// with -Z that is after root has given up its privileges, so nothing read
// from the spool makes root open, follow or write anything.
type spool struct {
	dir  string
	lock *os.File
}

// sidecar is the JSON kept next to a spooled file.
type sidecar struct {
	Meta archive.Meta `json:"meta"`
	// Dev and Ino identify the file sinkd wrote, which --upload-delete
	// removes only when its name still refers to it.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// Copy says the file is copied into the spool (another file
	// system), and this was written before the copy: a run that finds
	// it without its file copies the file again.
	Copy bool `json:"copy,omitempty"`
	// Open says this was written as the file opened (another file
	// system): a run that finds it without its file repairs the file,
	// which may be unfinished, and copies it.
	Open bool `json:"open,omitempty"`
	// MTime is the file's modification time (Unix nanoseconds) as it
	// closed: with its size, it tells the file from a later one that
	// got its inode number.
	MTime int64 `json:"mtime,omitempty"`
}

// spoolDirs returns the spool at dir and its own directories, the spool first.
func spoolDirs(dir string) []string {
	return []string{dir, filepath.Join(dir, "files"), filepath.Join(dir, "meta"), filepath.Join(dir, "tmp")}
}

func openSpool(dir string) (*spool, error) {
	for i, d := range spoolDirs(dir) {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("upload spool: %w", err)
		}
		if err := checkPrivate(d, i > 0); err != nil {
			return nil, err
		}
	}
	name := filepath.Join(dir, "lock")
	lock, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("upload spool: %s is a symbolic link; remove it", name)
	}
	if err != nil {
		return nil, fmt.Errorf("upload spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("upload spool %s is in use by another sinkd: %w", dir, err)
	}
	return &spool{dir: dir, lock: lock}, nil
}

// checkPrivate refuses a spool directory that is not the running user's,
// that others can write to, or (inner, one of the spool's own) that is a
// symbolic link: whatever lands in the spool is uploaded under this sink's
// prefix (and its descriptions steer copies and --upload-delete), so only
// the user sinkd runs as may add files, and a spool that another user
// holds is never opened (root refuses the spool of a -Z user).
func checkPrivate(dir string, inner bool) error {
	stat := os.Stat
	if inner {
		stat = os.Lstat
	}
	fi, err := stat(dir)
	if err != nil {
		return fmt.Errorf("upload spool: %w", err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("upload spool %s is a symbolic link; give the directory itself", dir)
	case uid != uint32(os.Geteuid()):
		return fmt.Errorf("upload spool %s belongs to uid %d, not to uid %d that sinkd runs as (the -Z user, if given); chown -R it", dir, uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("upload spool %s is writable by others (mode %04o); chmod go-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// GiveSpool makes the spool directory dir for the user uid:gid when it is
// missing: sinkd -Z, still root, calls it before it gives up root, and the
// user opens the spool afterwards. Root makes that one directory through
// a descriptor of its parent and hands it over by its own descriptor; it
// neither reads nor follows anything in the spool, which the user holds.
func GiveSpool(dir string, uid, gid int) error {
	dir = filepath.Clean(dir)
	parent, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return fmt.Errorf("upload spool: %w", err)
	}
	defer parent.Close()
	base := filepath.Base(dir)
	err = unix.Mkdirat(int(parent.Fd()), base, 0o750)
	if errors.Is(err, unix.EEXIST) {
		return nil // the user checks it, once root is gone
	}
	if err != nil {
		return fmt.Errorf("upload spool: mkdir %s: %w", dir, err)
	}
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("upload spool: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("upload spool: stat %s: %w", dir, err)
	}
	if st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("upload spool %s was replaced while it was made", dir)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("upload spool: chown %s: %w", dir, err)
	}
	return nil
}

func (s *spool) close() error { return s.lock.Close() }

func (s *spool) file(id string) string { return filepath.Join(s.dir, "files", id) }

func (s *spool) metaFile(id string) string { return filepath.Join(s.dir, "meta", id+".json") }

// newID names a file opened (or, not seen opening, closed) at t.
func newID(t time.Time, name string) string {
	return fmt.Sprintf("%016x-%s", t.UnixNano(), archive.SafeName(filepath.Base(name)))
}

// idTime returns when the file of id was opened.
func idTime(id string) (time.Time, bool) {
	hexNs, _, ok := strings.Cut(id, "-")
	if !ok || len(hexNs) != 16 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(hexNs, 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true
}

// idName returns the name of the capture file a spool ID was made for; a
// file put into the spool by other hands keeps its own name.
func idName(id string) string {
	if _, ok := idTime(id); ok {
		return id[17:]
	}
	return id
}

// errCrossDevice says a link is impossible and the file must be copied.
var errCrossDevice = errors.New("spool on another file system")

// link hard-links name into the spool as id.
func (s *spool) link(name, id string) error {
	err := os.Link(name, s.file(id))
	if err != nil && (errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM)) {
		return errCrossDevice
	}
	if err != nil {
		return fmt.Errorf("spool %s: %w", name, err)
	}
	return nil
}

// linkFile links name into the spool as id if name still leads to the
// file dev and ino identify: the link is checked, not the name, so that
// no other file can take its place in between.
func (s *spool) linkFile(name, id string, dev, ino uint64) error {
	if err := s.link(name, id); err != nil {
		return err
	}
	fi, err := os.Lstat(s.file(id))
	if err == nil {
		if d, i := devIno(fi); d != dev || i != ino {
			err = errors.New("its name leads to another file now")
		}
	}
	if err != nil {
		os.Remove(s.file(id))
		return fmt.Errorf("spool %s: %w", name, err)
	}
	return nil
}

// copyIn copies the open file f into the spool as id.
func (s *spool) copyIn(f *os.File, id string) error {
	err := s.place(s.file(id), func(out *os.File) error {
		_, err := io.Copy(out, io.NewSectionReader(f, 0, 1<<62))
		return err
	})
	if err != nil {
		return fmt.Errorf("spool copy of %s: %w", f.Name(), err)
	}
	return nil
}

// persist writes the sidecar of id durably, after the link it describes.
func (s *spool) persist(id string, sc sidecar) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := syncDir(filepath.Join(s.dir, "files")); err != nil {
		return err
	}
	err = s.place(s.metaFile(id), func(out *os.File) error {
		_, err := out.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("spool sidecar: %w", err)
	}
	return nil
}

// place makes dst through a new file in tmp/: written by write, synced,
// renamed into place and its directory synced, so that a crash never
// leaves a partial file at dst (start-up clears tmp).
func (s *spool) place(dst string, write func(*os.File) error) error {
	f, err := atomicfile.Create(dst, atomicfile.Options{Perm: 0o640, TempDir: filepath.Join(s.dir, "tmp")})
	if err != nil {
		return err
	}
	if err := write(f.File); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// remove takes id out of the spool.
func (s *spool) remove(id string) error {
	err := os.Remove(s.file(id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(s.metaFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// found is a file an earlier run left in the spool.
type found struct {
	id string
	sc sidecar
	ok bool // the sidecar was read
	// uncopied is a copy's sidecar without its file: the run that wrote
	// it ended before the copy did (or, Open, before the file closed).
	uncopied bool
}

// scan lists the spooled files, oldest first, and clears what an
// interrupted run left half done: copies in progress, sidecars of files
// already uploaded.
func (s *spool) scan() ([]found, error) {
	tmp, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	for _, e := range tmp {
		os.Remove(filepath.Join(s.dir, "tmp", e.Name()))
	}
	files, err := os.ReadDir(filepath.Join(s.dir, "files"))
	if err != nil {
		return nil, fmt.Errorf("upload spool: %w", err)
	}
	have := map[string]bool{}
	var out []found
	for _, e := range files {
		if !e.Type().IsRegular() {
			continue
		}
		id := e.Name()
		have[id] = true
		f := found{id: id}
		f.sc, f.ok = s.readSidecar(id)
		out = append(out, f)
	}
	metas, _ := os.ReadDir(filepath.Join(s.dir, "meta"))
	for _, e := range metas {
		id := strings.TrimSuffix(e.Name(), ".json")
		if have[id] {
			continue
		}
		f := found{id: id, uncopied: true}
		if f.sc, f.ok = s.readSidecar(id); f.ok && (f.sc.Copy || f.sc.Open) {
			out = append(out, f)
			continue
		}
		os.Remove(filepath.Join(s.dir, "meta", e.Name()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// readSidecar reads the sidecar of id, and says whether there is one.
func (s *spool) readSidecar(id string) (sidecar, bool) {
	var sc sidecar
	b, err := os.ReadFile(s.metaFile(id))
	if err != nil || json.Unmarshal(b, &sc) != nil {
		return sidecar{}, false
	}
	return sc, true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}

// devIno identifies a file.
func devIno(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev, st.Ino
	}
	return 0, 0
}
