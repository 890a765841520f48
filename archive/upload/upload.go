// Package upload ships closed capture files to S3-compatible object storage
// (sinkd --upload) so that captures outlive the sink.
//
// Nothing is lost on the way: a capture file is hard-linked into a spool
// directory as it opens, is queued as it closes, and leaves the spool only
// once the store has verified it (a SHA-256 the store checks on every
// request, then a HEAD showing the object's size and checksum). The spool
// is found again at start-up after a restart or a SIGKILL, the file that
// was being written included. While the store is down, uploads retry with
// exponential backoff. A spool that would grow past its limit drops files
// by a documented policy (FullPolicy), counted and logged. Keys and
// metadata follow package archive's layout.
package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/pcapout"
)

// FullPolicy says which file gives way when the spool is full.
type FullPolicy int

// The policies.
const (
	// DropOldest removes the oldest waiting files from the spool (never
	// the one being uploaded) to make room: the newest captures are kept,
	// as a -W ring keeps them.
	DropOldest FullPolicy = iota
	// DropNewest queues nothing more until there is room: the files
	// waiting since the store went away are kept.
	DropNewest
)

// ParseFullPolicy parses "drop-oldest" or "drop-newest".
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "drop-oldest":
		return DropOldest, nil
	case "drop-newest":
		return DropNewest, nil
	}
	return 0, fmt.Errorf("invalid spool policy %q: want drop-oldest or drop-newest", s)
}

func (p FullPolicy) String() string {
	if p == DropNewest {
		return "drop-newest"
	}
	return "drop-oldest"
}

// DefaultPartSize is the size of a multipart upload's parts; files up to
// this size go in one request.
const DefaultPartSize = 16 << 20

// Config configures an Uploader.
type Config struct {
	// Store is where files go; when nil, Client's S3 bucket Target.Bucket.
	Store  Store
	Client *s3.Client
	Target archive.Location
	// Spool is the spool directory; it should be on the file system of the
	// capture files, so that files are linked rather than copied.
	Spool string
	// SpoolLimit bounds the bytes waiting in the spool; 0 means a quarter
	// of the spool's file system.
	SpoolLimit int64
	Full       FullPolicy
	// Delete removes a capture file once its upload is verified
	// (--upload-delete), when its name still refers to the file uploaded.
	Delete bool
	// Sink and Host go into every object's key and metadata.
	Sink, Host string
	// PartSize is DefaultPartSize when zero; Parallel (2 when zero) parts
	// go at once.
	PartSize int64
	Parallel int
	// MinBackoff (1s) and MaxBackoff (1m) bound the wait between attempts
	// while the store fails.
	MinBackoff, MaxBackoff time.Duration
	// Refresh, when set, makes a new Client after the store refused the
	// credentials, before the next attempt: credentials rotated in the
	// shared files are read again without a restart (the AWS chain reads
	// a static profile once). It applies to the S3 store Client makes.
	Refresh func(context.Context) (*s3.Client, error)
	// Then, when set, receives each file Handle queued once the spool
	// shares nothing with it: the spool holds a copy of its own (or
	// gave the file up), so that a command may compress, move or change
	// the file (sinkd -z) without touching what is uploaded, and gzip,
	// which refuses a file with other links, takes it. Files go on in
	// the order they closed.
	Then   func(pcapout.ClosedFile)
	Logger *slog.Logger
}

// Failure says why an attempt failed.
type Failure int

// The failure reasons, as the metrics label them.
const (
	FailNetwork     Failure = iota // the store could not be reached
	FailCredentials                // the store refused the credentials
	FailStore                      // the store answered with another error
	FailIntegrity                  // the store holds other bytes than sent
	FailLocal                      // the spooled file could not be read
	FailStall                      // the store's connection sent and received nothing for the stall time
	NumFailures
)

var failureNames = [NumFailures]string{"network", "credentials", "store", "integrity", "local", "stall"}

func (f Failure) String() string { return failureNames[f] }

// Stats are the uploader's counts, one consistent snapshot.
type Stats struct {
	PendingFiles int
	PendingBytes int64
	// OldestPending is when the oldest waiting file closed (zero when
	// none waits).
	OldestPending time.Time
	UploadedFiles uint64
	UploadedBytes uint64
	Failures      [NumFailures]uint64 // failed attempts, by reason
	// DroppedFiles and DroppedBytes are files given up: by the full
	// spool's policy, or because they could not be linked, copied or read.
	DroppedFiles uint64
	DroppedBytes uint64
	// Full is set while the latest file could only be queued, or not at
	// all, by dropping one.
	Full       bool
	SpoolLimit int64
	// Deleted counts local files removed after upload (--upload-delete).
	Deleted uint64
}

// entry is one file in the spool.
type entry struct {
	id     string
	meta   archive.Meta
	dev    uint64
	ino    uint64
	size   int64
	closed time.Time
	// ready is false while a copy into the spool is under way.
	ready bool
	// recovered files may have a multipart upload an earlier run left.
	recovered bool
	// closedHere says this run closed the file: its dev and ino are what
	// it saw, not what a sidecar says, and --upload-delete may remove it.
	closedHere bool
	inFlight   bool
	// partial is what a failed attempt left in the store.
	partial Partial
}

// writing is a file being written, as recorded in the spool when it
// opened.
type writing struct {
	id       string
	dev, ino uint64
	linked   bool // else a sidecar (Open) stands for it: another file system
}

// Uploader uploads closed files in the order they closed.
type Uploader struct {
	cfg   Config
	spool *spool
	store Store

	mu      sync.Mutex
	queue   []*entry // oldest first
	stats   Stats
	journal []journalItem // sidecars to write, copies to make
	// aborts are the keys of dropped files that may have unfinished
	// multipart uploads in the store, whose parts would linger.
	aborts []string
	wake   chan struct{} // the worker has something to do
	jwake  chan struct{} // the journal has something to do
	stop   context.CancelFunc
	ctx    context.Context
	done   sync.WaitGroup

	lastFail   string // the last failure logged, to log each kind once
	failStreak int

	writing map[string]writing // by path
	// passing counts the closed files not yet passed on to Then.
	passing sync.WaitGroup
}

// journalItem is background work for a spooled file.
type journalItem struct {
	e    *entry
	src  *os.File // set when the file must be copied in
	side sidecar
	// closed goes on to Then once the spool holds its own copy; the
	// spool's link, which it shares with the file, is replaced by one
	// first when src is not set.
	closed *pcapout.ClosedFile
}

// New returns an Uploader for cfg. It touches no file until Start, so that
// sinkd -Z makes it while still root (for its metrics) and starts it as
// the user who owns the spool.
func New(cfg Config) *Uploader {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 2
	}
	if cfg.Store == nil {
		cfg.Store = &s3Store{client: cfg.Client, bucket: cfg.Target.Bucket, partSize: cfg.PartSize, parallel: cfg.Parallel}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &Uploader{
		cfg: cfg, store: cfg.Store,
		wake: make(chan struct{}, 1), jwake: make(chan struct{}, 1),
		ctx: ctx, stop: cancel, writing: map[string]writing{},
	}
	u.stats.SpoolLimit = cfg.SpoolLimit
	return u
}

// Start opens (or creates) the spool, queues what an earlier run left in
// it, the file it was writing repaired, and starts uploading. It is called
// once, as the user who owns the spool.
func (u *Uploader) Start() error {
	sp, err := openSpool(u.cfg.Spool)
	if err != nil {
		return err
	}
	if u.cfg.SpoolLimit <= 0 {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(u.cfg.Spool, &fs); err != nil {
			sp.close()
			return fmt.Errorf("upload spool %s: %w", u.cfg.Spool, err)
		}
		u.cfg.SpoolLimit = int64(fs.Blocks) * fs.Bsize / 4
		u.mu.Lock()
		u.stats.SpoolLimit = u.cfg.SpoolLimit
		u.mu.Unlock()
	}
	u.spool = sp
	if err := u.recover(); err != nil {
		sp.close()
		return err
	}
	u.done.Add(2)
	go u.work()
	go u.writeJournal()
	return nil
}

// recover queues the files an earlier run left in the spool.
func (u *Uploader) recover() error {
	list, err := u.spool.scan()
	if err != nil {
		return err
	}
	var bytes int64
	for _, f := range list {
		if f.uncopied && !u.copyAgain(f) {
			continue
		}
		name := u.spool.file(f.id)
		e := &entry{id: f.id, ready: true, recovered: true}
		if f.ok && !f.sc.Open {
			e.meta = f.sc.Meta
		} else {
			// Killed before the sidecar was written, or while the file
			// was being written: it describes itself, all but its
			// original directory when no sidecar said it.
			e.meta = u.unfinished(name, f)
		}
		fi, err := os.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		e.size = fi.Size()
		if e.closed, _ = idTime(f.id); fi.ModTime().After(e.closed) {
			e.closed = fi.ModTime() // its last write: when it closed
		}
		if e.meta.First.IsZero() {
			e.meta.First, e.meta.Last = e.closed, e.closed
		}
		if e.meta.Sink == "" {
			e.meta.Sink, e.meta.Host = u.cfg.Sink, u.cfg.Host
		}
		e.meta.Bytes = uint64(e.size)
		u.queue = append(u.queue, e)
		bytes += e.size
	}
	u.stats.PendingFiles, u.stats.PendingBytes = len(u.queue), bytes
	if len(u.queue) > 0 {
		u.cfg.Logger.Info("files left in the upload spool by an earlier run are queued", "files", len(u.queue), "bytes", bytes, "spool", u.cfg.Spool)
		if u.cfg.Delete {
			u.cfg.Logger.Info("--upload-delete leaves the capture files of files an earlier run spooled where they are: only the spool says which file they were, and it proves nothing", "files", len(u.queue))
		}
	}
	return nil
}

// unfinished repairs a spooled file an earlier run left without its
// closing sidecar (it may have been killed while writing it) and
// describes it from its content.
func (u *Uploader) unfinished(name string, f found) archive.Meta {
	file, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err == nil {
		err = u.repair(file, name)
		file.Close()
	}
	if err != nil {
		u.cfg.Logger.Warn("a spooled file cannot be repaired; uploading it as it is", "file", name, "err", err)
	}
	m, err := describe(name)
	if err != nil {
		u.cfg.Logger.Warn("a spooled file is not a complete capture; uploading it as it is", "file", name, "err", err)
	}
	m.File = idName(f.id)
	if f.ok && f.sc.Meta.File != "" {
		m.File = f.sc.Meta.File
	}
	return m
}

// repair cuts a file sinkd was killed while writing back to its last
// whole packet, and says so.
func (u *Uploader) repair(f *os.File, name string) error {
	cut, err := repair(f)
	if cut > 0 {
		u.cfg.Logger.Warn("a file sinkd was killed while writing is cut back to its last whole packet", "file", name, "cut_bytes", cut)
	}
	return err
}

// copyAgain copies into the spool a file whose copy an earlier run did not
// finish, if its name still leads to the file that closed; a file that was
// still being written (Open) is repaired first.
func (u *Uploader) copyAgain(f found) bool {
	name := f.sc.Meta.File
	flag := os.O_RDONLY
	if f.sc.Open {
		flag = os.O_RDWR
	}
	src, fi, err := openFile(name, flag, f.sc.Dev, f.sc.Ino)
	if err == nil {
		switch {
		case f.sc.Open:
			if err = u.repair(src, name); err == nil {
				err = u.spool.copyIn(src, f.id)
			}
		case fi.Size() != int64(f.sc.Meta.Bytes) || fi.ModTime().UnixNano() != f.sc.MTime:
			err = errors.New("its name leads to another file now")
		default:
			err = u.spool.copyIn(src, f.id)
		}
		src.Close()
	}
	if err != nil {
		u.spool.remove(f.id)
		u.giveUp("a file not yet copied into the upload spool when sinkd stopped is lost to the upload", name, int64(f.sc.Meta.Bytes), err)
		return false
	}
	return true
}

// Opened is the subscriber to pcapout's file-opened event. It links the
// file into the spool before a packet goes to it, so that a run killed
// while writing it leaves what it wrote to the next one, even after a new
// file took its name; on another file system a sidecar naming the file
// stands for the link.
func (u *Uploader) Opened(f pcapout.OpenedFile) {
	name := f.Name
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	w := writing{id: newID(time.Now(), name), dev: f.Dev, ino: f.Ino, linked: true}
	err := u.spool.linkFile(name, w.id, f.Dev, f.Ino)
	if errors.Is(err, errCrossDevice) {
		w.linked = false
		err = u.spool.persist(w.id, sidecar{Meta: archive.Meta{File: name, Format: f.Format.String()}, Dev: f.Dev, Ino: f.Ino, Open: true})
	}
	if err != nil {
		u.cfg.Logger.Error("the upload spool cannot hold the file being written; it is queued when it closes, but not if sinkd is killed first", "file", name, "err", err)
		return
	}
	u.mu.Lock()
	u.writing[name] = w
	u.mu.Unlock()
}

// Add queues a closed capture file. m describes it; m.File is its path.
// It is called as the file closes, before the next file is created: it
// only links the file into the spool, unless it was linked as it opened,
// and leaves the rest to the background.
func (u *Uploader) Add(m archive.Meta) { u.add(m, nil) }

// add queues m; closed, when set, goes on to Then once the spool holds a
// copy of its own, or at once when the file is not queued.
func (u *Uploader) add(m archive.Meta, closed *pcapout.ClosedFile) {
	if u.spool == nil {
		u.passOn(closed)
		return // closed before Start: sinkd stops at start-up, before any packet
	}
	now := time.Now()
	if abs, err := filepath.Abs(m.File); err == nil {
		m.File = abs
	}
	u.mu.Lock()
	w, opened := u.writing[m.File]
	delete(u.writing, m.File)
	u.mu.Unlock()
	var fi os.FileInfo
	var err error
	if w.linked {
		// The link made as it opened holds it, whatever its name leads to.
		fi, err = os.Lstat(u.spool.file(w.id))
	} else {
		fi, err = os.Stat(m.File)
	}
	if err != nil {
		u.unspool(w)
		u.passOn(closed)
		u.giveUp("a closed capture file cannot be queued for upload", m.File, int64(m.Bytes), err)
		return
	}
	size := fi.Size()
	m.Sink, m.Host, m.Bytes = u.cfg.Sink, u.cfg.Host, uint64(size)
	if m.First.IsZero() {
		m.First, m.Last = now, now
	}
	if !u.makeRoom(m.File, size) {
		u.unspool(w)
		u.passOn(closed)
		return
	}
	e := &entry{id: newID(now, m.File), meta: m, size: size, closed: now, ready: true, closedHere: true}
	e.dev, e.ino = devIno(fi)
	if opened {
		e.id, e.dev, e.ino = w.id, w.dev, w.ino
	}
	item := journalItem{e: e, side: sidecar{Meta: m, Dev: e.dev, Ino: e.ino, MTime: fi.ModTime().UnixNano()}}
	if !w.linked {
		err = u.spool.linkFile(m.File, e.id, e.dev, e.ino)
	}
	if errors.Is(err, errCrossDevice) {
		// Opened now, the file's content is safe from a ring reusing its
		// name (a new file, not a truncation); the copy runs later.
		item.src, _, err = openFile(m.File, os.O_RDONLY, e.dev, e.ino)
		e.ready = false
	}
	if err != nil {
		u.release(size)
		u.unspool(w)
		u.passOn(closed)
		u.giveUp("a closed capture file cannot be queued for upload", m.File, size, err)
		return
	}
	item.closed = closed
	if closed != nil && item.src == nil {
		// The spool's link is the capture file itself: it is replaced
		// by a copy before the file goes on, and uploaded after that.
		e.ready = false
	}
	ready := e.ready // the journal sets it once the copy is made
	u.mu.Lock()
	u.queue = append(u.queue, e)
	u.stats.PendingFiles++
	u.journal = append(u.journal, item)
	u.mu.Unlock()
	signal(u.jwake)
	if ready {
		signal(u.wake)
	}
}

// unspool takes out of the spool what Opened put there for a file that
// is not queued after all.
func (u *Uploader) unspool(w writing) {
	if w.id == "" {
		return
	}
	if err := u.spool.remove(w.id); err != nil {
		u.cfg.Logger.Error("upload spool: cannot remove a file", "err", err)
	}
}

// openFile opens name if it still leads to the file dev and ino identify,
// never through a symbolic link.
func openFile(name string, flag int, dev, ino uint64) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		if d, i := devIno(fi); d != dev || i != ino {
			err = fmt.Errorf("%s: its name leads to another file now", name)
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// makeRoom reserves size bytes in the spool for name, dropping files as
// the policy says; it reports whether name may be queued.
func (u *Uploader) makeRoom(name string, size int64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	limit := u.cfg.SpoolLimit
	if u.stats.PendingBytes+size <= limit {
		u.stats.PendingBytes += size
		u.stats.Full = false
		return true
	}
	u.stats.Full = true
	if u.cfg.Full == DropNewest || size > limit {
		u.stats.DroppedFiles++
		u.stats.DroppedBytes += uint64(size)
		u.cfg.Logger.Error("upload spool full: a closed capture file is not queued for upload (policy "+u.cfg.Full.String()+"); it stays where it was written",
			"file", name, "bytes", size, "pending_bytes", u.stats.PendingBytes, "limit_bytes", limit)
		return false
	}
	for u.stats.PendingBytes+size > limit {
		// The oldest: failed attempts reorder the queue.
		i := -1
		for j, e := range u.queue {
			if !e.inFlight && e.ready && (i < 0 || e.closed.Before(u.queue[i].closed)) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		e := u.queue[i]
		u.queue = slices.Delete(u.queue, i, i+1)
		if e.partial != nil || e.recovered {
			u.aborts = append(u.aborts, e.meta.Key(u.cfg.Target))
			signal(u.wake)
		}
		u.stats.PendingFiles--
		u.stats.PendingBytes -= e.size
		u.stats.DroppedFiles++
		u.stats.DroppedBytes += uint64(e.size)
		if err := u.spool.remove(e.id); err != nil {
			u.cfg.Logger.Error("upload spool: cannot remove a dropped file", "err", err)
		}
		u.cfg.Logger.Error("upload spool full: the oldest waiting file is dropped from the upload queue (policy drop-oldest); the capture file itself is not touched",
			"file", e.meta.File, "closed", e.closed, "bytes", e.size, "limit_bytes", limit)
	}
	if u.stats.PendingBytes+size > limit {
		// Only files being uploaded or copied are left: the new one waits
		// its turn no longer than they do, so take it.
		u.cfg.Logger.Warn("upload spool over its limit while files are in flight", "pending_bytes", u.stats.PendingBytes+size, "limit_bytes", limit)
	}
	u.stats.PendingBytes += size
	return true
}

// giveUp counts and logs a file that will not be uploaded although the
// spool had room for it: it could not be linked, copied or read. The
// capture file itself, if it is still there, stays where it was written.
func (u *Uploader) giveUp(msg, name string, size int64, err error) {
	u.mu.Lock()
	u.stats.DroppedFiles++
	u.stats.DroppedBytes += uint64(max(size, 0))
	u.mu.Unlock()
	u.cfg.Logger.Error(msg, "file", name, "bytes", size, "err", err)
}

func (u *Uploader) release(size int64) {
	u.mu.Lock()
	u.stats.PendingBytes -= size
	u.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// writeJournal writes sidecars and makes copies in the order files closed.
func (u *Uploader) writeJournal() {
	defer u.done.Done()
	for {
		if u.drainJournal() > 0 {
			continue
		}
		select {
		case <-u.jwake:
		case <-u.ctx.Done():
			u.drainJournal()
			return
		}
	}
}

// drainJournal handles what the journal holds and says how much that was.
func (u *Uploader) drainJournal() int {
	u.mu.Lock()
	items := u.journal
	u.journal = nil
	u.mu.Unlock()
	for _, it := range items {
		u.journalOne(it)
	}
	return len(items)
}

func (u *Uploader) journalOne(it journalItem) {
	if it.src != nil {
		// The description first: a run that ends before the copy does
		// finds it, and copies the file again.
		it.side.Copy = true
		err := u.spool.persist(it.e.id, it.side)
		if err == nil {
			err = u.spool.copyIn(it.src, it.e.id)
		}
		it.src.Close()
		u.passOn(it.closed)
		if err != nil {
			u.forget(it.e)
			u.giveUp("a closed capture file cannot be copied into the upload spool; it is not uploaded", it.e.meta.File, it.e.size, err)
			return
		}
		u.mu.Lock()
		it.e.ready = true
		u.mu.Unlock()
		signal(u.wake)
		return
	}
	if it.closed != nil {
		u.unshare(it)
	}
	u.mu.Lock()
	gone := !slices.Contains(u.queue, it.e)
	u.mu.Unlock()
	if gone {
		return // uploaded or dropped already
	}
	if err := u.spool.persist(it.e.id, it.side); err != nil {
		u.cfg.Logger.Warn("upload spool: the description of a file could not be saved; after a crash it is read from the file", "file", it.e.meta.File, "err", err)
	}
}

// unshare replaces the spool's link to a closed file by a copy, then
// passes the file on to Then, which may change it. Should the copy fail,
// the link stays, and the file is not passed on: a command could change
// what is uploaded.
func (u *Uploader) unshare(it journalItem) {
	name := u.spool.file(it.e.id)
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err == nil {
		err = u.spool.copyIn(f, it.e.id)
		f.Close()
	}
	u.mu.Lock()
	it.e.ready = true
	u.mu.Unlock()
	signal(u.wake)
	if err != nil {
		u.passing.Done()
		u.cfg.Logger.Error("the upload spool cannot make a copy of its own of a closed file; the post-rotate command is not run on it, so that it cannot change what is uploaded", "file", it.e.meta.File, "err", err)
		return
	}
	u.passOn(it.closed)
}

// passOn gives a closed file to Then.
func (u *Uploader) passOn(f *pcapout.ClosedFile) {
	if f == nil {
		return
	}
	u.cfg.Then(*f)
	u.passing.Done()
}

// PassedOn waits until every file Handle queued went on to Then, so
// that Then's receiver may stop taking files.
func (u *Uploader) PassedOn() { u.passing.Wait() }

// forget takes e out of the queue and the spool.
func (u *Uploader) forget(e *entry) {
	u.mu.Lock()
	if i := slices.Index(u.queue, e); i >= 0 {
		u.queue = slices.Delete(u.queue, i, i+1)
		u.stats.PendingFiles--
		u.stats.PendingBytes -= e.size
	}
	u.mu.Unlock()
	if err := u.spool.remove(e.id); err != nil {
		u.cfg.Logger.Error("upload spool: cannot remove a file", "err", err)
	}
}

// next returns the oldest file ready to upload, marked in flight.
func (u *Uploader) next() *entry {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, e := range u.queue {
		if e.ready && !e.inFlight {
			e.inFlight = true
			return e
		}
	}
	return nil
}

// work uploads files one after the other, waiting between failed attempts.
func (u *Uploader) work() {
	defer u.done.Done()
	backoff := time.Duration(0)
	for {
		u.abortDropped()
		e := u.next()
		if e == nil {
			select {
			case <-u.wake:
				continue
			case <-u.ctx.Done():
				return
			}
		}
		err := u.upload(e)
		u.mu.Lock()
		e.inFlight = false
		if err != nil {
			u.requeue(e)
		}
		u.mu.Unlock()
		if err == nil {
			backoff = 0
			continue
		}
		if u.ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, u.cfg.MinBackoff), u.cfg.MaxBackoff)
		// Jitter keeps sinks that lost the store together from returning
		// together.
		wait := backoff - time.Duration(rand.Int64N(int64(backoff)/5+1))
		select {
		case <-time.After(wait):
		case <-u.ctx.Done():
			return
		}
		if u.cfg.Refresh != nil && archive.CredentialError(err) {
			u.refresh()
		}
	}
}

// abortDropped aborts the multipart uploads of dropped files, once; a
// failure leaves them to the bucket's lifecycle rule.
func (u *Uploader) abortDropped() {
	u.mu.Lock()
	keys := u.aborts
	u.aborts = nil
	u.mu.Unlock()
	for _, key := range keys {
		if err := u.store.Abort(u.ctx, key); err != nil {
			u.cfg.Logger.Warn("the unfinished upload of a dropped file could not be aborted; a lifecycle rule (AbortIncompleteMultipartUpload) removes its parts", "object", key, "err", err)
		}
	}
}

// requeue puts e, whose attempt failed, behind the other waiting files: a
// file the store keeps refusing (or that cannot be read) holds up none of
// them, and while the store is down the order hardly changes.
func (u *Uploader) requeue(e *entry) {
	if i := slices.Index(u.queue, e); i >= 0 {
		u.queue = append(slices.Delete(u.queue, i, i+1), e)
	}
}

// refresh reads the credential chain again: a client made afresh.
func (u *Uploader) refresh() {
	c, err := u.cfg.Refresh(u.ctx)
	if err != nil {
		u.cfg.Logger.Debug("the store's client could not be made again", "err", err)
		return
	}
	if s, ok := u.store.(*s3Store); ok {
		s.client = c
	}
}

func (u *Uploader) pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue)
}

// upload makes one attempt at e.
func (u *Uploader) upload(e *entry) error {
	ctx := u.ctx
	name := u.spool.file(e.id)
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		u.fail(FailLocal, err)
		u.forget(e)
		u.giveUp("a spooled file vanished; it cannot be uploaded", name, e.size, err)
		return nil // nothing to retry
	}
	defer f.Close()
	key := e.meta.Key(u.cfg.Target)
	if e.recovered {
		if err := u.store.Abort(ctx, key); err != nil {
			return u.failed(err)
		}
		e.recovered = false
	}
	obj := Object{Key: key, File: f, Size: e.size, Meta: e.meta.Headers(), ContentType: archive.ContentType(e.meta.Format)}
	if e.partial, err = u.store.Put(ctx, obj, e.partial); err != nil {
		return u.failed(err)
	}
	if u.cfg.Delete {
		u.deleteOriginal(e, f)
	}
	u.forget(e)
	u.mu.Lock()
	u.stats.UploadedFiles++
	u.stats.UploadedBytes += uint64(e.size)
	streak := u.failStreak
	u.failStreak, u.lastFail = 0, ""
	u.mu.Unlock()
	if streak > 0 {
		u.cfg.Logger.Info("uploads resumed", "failed_attempts", streak)
	}
	u.cfg.Logger.Debug("uploaded", "file", e.meta.File, "object", u.cfg.Target.String()+"/"+key, "bytes", e.size)
	return nil
}

// deleteOriginal removes the capture file e was spooled from, uploaded
// from spooled, if this run closed it (what a sidecar in the spool says
// proves nothing: its writer may have planted it), its name still refers
// to that file (a -W ring may have made a new one) and it holds what was
// uploaded: it is the spooled inode itself, or (a spool on another file
// system) its bytes are. So nothing planted in the spool can make sinkd
// remove a file.
func (u *Uploader) deleteOriginal(e *entry, spooled *os.File) {
	if !e.closedHere {
		return
	}
	fi, err := os.Lstat(e.meta.File)
	if err != nil || !filepath.IsAbs(e.meta.File) || !fi.Mode().IsRegular() || fi.Size() != e.size {
		return // gone already, or not what was uploaded
	}
	if dev, ino := devIno(fi); dev != e.dev || ino != e.ino {
		return
	}
	st, err := spooled.Stat()
	if err != nil || !os.SameFile(st, fi) && !sameContent(spooled, e.meta.File) {
		// Not the spooled inode (a copy, or a description planted in
		// the spool) and not the bytes uploaded: keep it.
		return
	}
	if err := os.Remove(e.meta.File); err != nil {
		u.cfg.Logger.Error("--upload-delete: cannot remove an uploaded capture file", "file", e.meta.File, "err", err)
		return
	}
	u.mu.Lock()
	u.stats.Deleted++
	u.mu.Unlock()
}

// failed counts and logs a failed attempt and returns err.
func (u *Uploader) failed(err error) error {
	if u.ctx.Err() != nil {
		return err // stopping, not failing
	}
	var reason Failure
	code := archive.ErrorCode(err)
	switch {
	case errors.Is(err, errIntegrity), code == "BadDigest", code == "XAmzContentChecksumMismatch", code == "XAmzContentSHA256Mismatch", code == "InvalidDigest":
		reason = FailIntegrity
	case archive.CredentialError(err):
		reason = FailCredentials
	case errors.Is(err, errRead):
		reason = FailLocal
	case errors.Is(err, archive.ErrStall):
		reason = FailStall
	case code != "":
		reason = FailStore
	default:
		reason = FailNetwork
	}
	u.fail(reason, err)
	return err
}

// fail counts a failure and logs it unless it is the same kind as the last.
func (u *Uploader) fail(reason Failure, err error) {
	kind := reason.String() + "/" + archive.ErrorCode(err)
	u.mu.Lock()
	u.stats.Failures[reason]++
	u.failStreak++
	repeat := kind == u.lastFail
	u.lastFail = kind
	pending := len(u.queue)
	u.mu.Unlock()
	if repeat {
		u.cfg.Logger.Debug("upload failed again", "reason", reason, "err", err)
		return
	}
	msg := "upload failed; retrying with backoff, files stay in the spool"
	switch reason {
	case FailCredentials:
		msg = "the store refused the credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity. Retrying with backoff; files stay in the spool"
	case FailNetwork:
		msg = "the store cannot be reached; retrying with backoff, files stay in the spool"
	case FailStall:
		msg = "the store accepted a request and then sent nothing (--upload-stall); retrying on a new connection with backoff, files stay in the spool"
	case FailIntegrity:
		msg = "the store does not hold what was sent; retrying"
	case FailStore:
		if archive.ErrorCode(err) == "NoSuchBucket" {
			msg = "the bucket does not exist (sinkd does not create buckets); retrying with backoff, files stay in the spool"
		}
	}
	u.cfg.Logger.Error(msg, "target", u.cfg.Target.String(), "reason", reason, "pending_files", pending, "err", err)
}

// Stats returns a snapshot of the counts.
func (u *Uploader) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	for _, e := range u.queue {
		if s.OldestPending.IsZero() || e.closed.Before(s.OldestPending) {
			s.OldestPending = e.closed
		}
	}
	return s
}

// Close uploads what is waiting for up to wait, then stops; files not
// uploaded by then stay in the spool for the next run.
func (u *Uploader) Close(wait time.Duration) Stats {
	for deadline := time.Now().Add(wait); u.pending() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	u.stop()
	u.done.Wait()
	u.spool.close()
	s := u.Stats()
	if s.PendingFiles > 0 {
		u.cfg.Logger.Warn("files not uploaded yet stay in the spool for the next run", "files", s.PendingFiles, "bytes", s.PendingBytes, "spool", u.cfg.Spool)
	}
	return s
}

// Handle is the subscriber to pcapout's file-closed event: it queues the
// file for upload.
func (u *Uploader) Handle(f pcapout.ClosedFile) {
	var closed *pcapout.ClosedFile
	if u.cfg.Then != nil {
		u.passing.Add(1)
		closed = &f
	}
	u.add(archive.Meta{
		File: f.Name, Format: f.Format.String(), First: f.First, Last: f.Last,
		Packets: f.Packets, Sources: f.Interfaces, Captures: f.Captures,
	}, closed)
}

// sameContent reports whether the file name holds the bytes of f.
func sameContent(f *os.File, name string) bool {
	g, err := os.Open(name)
	if err != nil {
		return false
	}
	defer g.Close()
	a, errA := hashSection(f, 0, 1<<62)
	b, errB := hashSection(g, 0, 1<<62)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}
