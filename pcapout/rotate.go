// Package pcapout writes capture files the way tcpdump does: nanosecond pcap
// or pcapng (an interface per source, statistics at close), rotated by size
// (-C), on the clock (-G) or on demand, as a ring or with a file limit (-W)
// or keeping the newest files (--keep), and optionally split into one set of
// files per source. Each file is announced to subscribers as it is made
// (OnOpen: sinkd's upload spool) and once it is closed (OnClose: sinkd's -z
// command, the upload). Every file is a complete capture on its own,
// is made as a new inode, and a write error never leaves a torn record
// behind.
package pcapout

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture"
)

// ErrFileLimit is returned when -G rotation has created the -W number of
// files: like tcpdump, the capture is then over.
var ErrFileLimit = errors.New("maximum file limit reached")

// ErrReaderGone is returned by Flush when the reader of a stream (a pipe,
// a fifo) went away: the capture is over.
var ErrReaderGone = errors.New("the reader of the output went away")

// DefaultFlushBytes is how much is buffered before a write to the file.
const DefaultFlushBytes = 256 << 10

// retryInterval is how long writing pauses after a failed write.
const retryInterval = time.Second

// maxSkips bounds how many names held by something else one rotation
// skips before it gives up (and retries a second later).
const maxSkips = 64

// Options configure a Rotator. Path is required.
type Options struct {
	// Path is the file name ("-" for standard output, or a fifo, both
	// written as a stream); with Interval it may hold strftime conversions.
	Path     string
	Format   Format
	SnapLen  int
	LinkType layers.LinkType
	// Application names the writer in pcapng section headers.
	Application string
	// FileSize rotates before a file would grow past this many bytes (-C).
	FileSize int64
	// Interval rotates on the clock (-G), whether or not packets arrive.
	Interval time.Duration
	// FileCount makes -C rotation a ring of this many files, and ends the
	// capture after this many -G files (-W).
	FileCount int
	// Keep, when positive, keeps only the newest Keep files (the one being
	// written included), removing older ones: a ring for any kind of
	// rotation (--keep). It counts the files this Rotator made and the
	// capture files an earlier run left under the same name pattern, and
	// what a compressor (-z gzip) made of either (NAME.gz and the like).
	Keep int
	// FlushBytes is the write chunk size; DefaultFlushBytes when zero.
	FlushBytes int
	Logger     *slog.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// OSDrops, when set, gives the kernel's drop count for the pcapng
	// statistics written as a file closes (on interface 0).
	OSDrops func() uint64
	// Owner, when set, owns every file made (-Z: files made while still
	// root go to the user sinkd becomes).
	Owner *Owner
	// Stats receives the running totals; a Rotator keeps its own when nil.
	// A Split shares one among its files.
	Stats *Stats
}

// Owner is a file owner.
type Owner struct{ UID, GID int }

// Stats are running totals, safe to read while the Rotator works.
type Stats struct {
	Packets     atomic.Uint64 // packets written to disk
	Bytes       atomic.Uint64 // bytes written to disk, headers included
	Rotations   atomic.Uint64 // files closed to open the next
	WriteErrors atomic.Uint64 // failed writes or file creations
	Dropped     atomic.Uint64 // packets lost to write errors
}

// source is one interface of the output and its counts.
type source struct {
	Interface
	received  uint64 // since the start: written or filtered
	filtered  uint64 // since the start
	delivered uint64 // in the current file
}

// Rotator writes packets to a sequence of capture files. It is not safe for
// concurrent use, except for its Stats.
type Rotator struct {
	opts    Options
	stats   *Stats
	out     *output
	enc     encoder
	sources []source
	stream  bool // Path names a fifo or a device: written as a stream
	started time.Time
	// first and last are the current file's packet timestamps.
	first, last time.Time
	subs        []func(ClosedFile)
	openSubs    []func(OpenedFile)
	kept        []madeFile // for Keep, oldest first
	ghosts      []madeFile // for Keep: removed while a -z command may have been compressing them

	sizeCount int       // tcpdump's Cflag_count: size and on-demand rotations
	timeFiles int       // files opened on the clock (Gflag_count)
	chars     int       // digits of the -W file number suffix
	opened    time.Time // when the current -G period began
	failUntil time.Time // no write is tried before this, after a failure
	failing   bool
	lost      uint64    // packets lost in the current failure episode
	closed    error     // the reader of a stream went away
	spare     []byte    // the last file's write buffer, for the next
	checked   time.Time // when the file was last seen to have a name
}

// Open creates the first file and writes its header. Errors name the file.
func Open(opts Options) (*Rotator, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = DefaultFlushBytes
	}
	if opts.SnapLen <= 0 {
		opts.SnapLen = capture.MaxSnapLen
	}
	rotates := opts.FileSize > 0 || opts.Interval > 0
	if opts.Path == "-" && rotates {
		return nil, errors.New("rotation (-C, -G) needs a file name, not standard output")
	}
	r := &Rotator{opts: opts, stats: opts.Stats}
	if r.stats == nil {
		r.stats = &Stats{}
	}
	if opts.Path != "-" && isStream(opts.Path) {
		if rotates {
			return nil, fmt.Errorf("%s is a fifo or a device: rotation (-C, -G) needs regular files", opts.Path)
		}
		r.stream = true
	}
	switch opts.Format {
	case FormatPcapng:
		r.enc = &pcapngEncoder{snapLen: uint32(opts.SnapLen), linkType: opts.LinkType, app: opts.Application}
	default:
		r.enc = &pcapEncoder{snapLen: uint32(opts.SnapLen), linkType: opts.LinkType}
	}
	if opts.FileCount > 0 {
		for x := opts.FileCount - 1; x > 0; x /= 10 {
			r.chars++
		}
	}
	if opts.Interval > 0 && !hasConversion(opts.Path) && opts.FileSize == 0 {
		opts.Logger.Warn("-G without a strftime conversion in the file name overwrites the same file each period", "path", opts.Path)
	}
	r.opened = opts.Now()
	r.started = r.opened
	if opts.Keep > 0 && opts.Path != "-" && !r.stream {
		r.adopt()
	}
	// A name held by something else is an error at the start, where the
	// user sees it; later, rotation skips past it.
	if err := r.openNext(0); err != nil {
		return nil, err
	}
	return r, nil
}

// Stats returns the running totals.
func (r *Rotator) Stats() *Stats { return r.stats }

// Stream reports whether the output is a stream (standard output, a
// fifo) rather than a file, and so wants a flush after every batch.
func (r *Rotator) Stream() bool { return r.stream || r.opts.Path == "-" }

// OnClose subscribes f to the file-closed event: f is called, on the
// writer's goroutine, after each file is closed for good (rotated away or
// at Close), and must not block. Streams announce nothing.
func (r *Rotator) OnClose(f func(ClosedFile)) { r.subs = append(r.subs, f) }

// AddInterface declares a source and returns its interface number for
// WritePacket. In pcapng it is described in this file and every later one;
// pcap has a single interface, 0, named after the first source.
func (r *Rotator) AddInterface(ifc Interface) int {
	if r.opts.Format != FormatPcapng {
		if len(r.sources) == 0 {
			r.sources = append(r.sources, source{Interface: ifc})
		}
		return 0
	}
	r.sources = append(r.sources, source{Interface: ifc})
	if r.out == nil {
		return len(r.sources) - 1
	}
	// Its description and statistics must fit under -C too: if they do
	// not, the next file's header describes it.
	var idb output
	r.enc.addInterface(&idb, ifc)
	if r.opts.FileSize > 0 && r.out.records > 0 &&
		r.out.size()+int64(len(idb.buf)+r.enc.trailerLen(len(r.sources))) > r.opts.FileSize {
		r.rotate(false)
		return len(r.sources) - 1
	}
	r.out.buf = append(r.out.buf, idb.buf...)
	return len(r.sources) - 1
}

// Filtered counts a packet of interface iface that the filter rejected,
// for the pcapng statistics.
func (r *Rotator) Filtered(iface int) {
	if iface < len(r.sources) {
		r.sources[iface].received++
		r.sources[iface].filtered++
	}
}

// Name returns the file being written ("" while none could be opened).
func (r *Rotator) Name() string {
	if r.out == nil {
		return ""
	}
	return r.out.name
}

// fileName follows tcpdump's MakeFilename: strftime with -G, then a
// zero-padded counter once any size rotation is possible.
func (r *Rotator) fileName() string {
	name := r.opts.Path
	if r.opts.Interval > 0 {
		name = strftime(name, r.opened)
	}
	if r.sizeCount == 0 && (r.opts.FileSize == 0 || r.chars == 0) {
		return name
	}
	return fmt.Sprintf("%s%0*d", name, r.chars, r.sizeCount)
}

// advance moves the file number on, wrapping a -C -W ring.
func (r *Rotator) advance() {
	r.sizeCount++
	if r.opts.FileCount > 0 && r.opts.FileSize > 0 && r.opts.Interval == 0 && r.sizeCount >= r.opts.FileCount {
		r.sizeCount = 0
	}
}

// openNext opens the next file, skipping up to skips names that something
// other than a regular file holds.
func (r *Rotator) openNext(skips int) error {
	out := &output{}
	// The write buffer passes from file to file: a capture rotating every
	// few seconds should not make garbage of half a megabyte each time.
	if need := r.opts.FlushBytes + r.opts.SnapLen + 64; cap(r.spare) >= need {
		out.buf, r.spare = r.spare[:0], nil
	} else {
		out.buf = make([]byte, 0, need)
	}
	ifaces := make([]Interface, len(r.sources))
	for i, s := range r.sources {
		ifaces[i] = s.Interface
	}
	r.enc.header(out, ifaces)
	var err error
	switch {
	case r.opts.Path == "-":
		out.openStdout()
	case r.stream:
		err = out.openStream(r.opts.Path)
	default:
		err = r.create(out, skips)
	}
	if err != nil {
		r.spare = out.buf
		return err
	}
	r.out = out
	for i := range r.sources {
		r.sources[i].delivered = 0
	}
	r.first, r.last = time.Time{}, time.Time{}
	// A stream's header goes out at once, so that its reader starts.
	r.Flush()
	return nil
}

// create makes the next file, skipping names held by something else.
func (r *Rotator) create(out *output, skips int) error {
	for {
		name := r.fileName()
		err := out.create(name, r.opts.Owner)
		if err == nil {
			r.made(out)
			r.announceOpen(out)
			return nil
		}
		if !nameUnusable(err) || skips <= 0 {
			return err
		}
		skips--
		r.opts.Logger.Error("skipping a capture file name sinkd cannot take", "err", err)
		r.advance()
	}
}

// WritePacket appends one packet of interface iface. length is its length
// on the wire; data longer than the snap length is cut. A packet is never
// split across files.
func (r *Rotator) WritePacket(iface int, ts time.Time, data []byte, length int) {
	if len(data) > r.opts.SnapLen {
		data = data[:r.opts.SnapLen]
	}
	if length < len(data) {
		length = len(data)
	}
	if iface < len(r.sources) {
		// Counted after any rotation below, in the file it goes to.
		defer func() { r.sources[iface].received++ }()
	}
	if r.out == nil && !r.reopen() {
		r.drop(1)
		return
	}
	if r.opts.FileSize > 0 && r.out.records > 0 &&
		r.out.size()+int64(r.enc.recordLen(len(data))+r.enc.trailerLen(len(r.sources))) > r.opts.FileSize {
		r.rotate(false)
		if r.out == nil {
			r.drop(1)
			return
		}
	}
	r.enc.packet(r.out, iface, ts, data, length)
	if iface < len(r.sources) {
		r.sources[iface].delivered++
	}
	if r.first.IsZero() {
		r.first = ts
	}
	r.last = ts
	r.out.pending++
	r.out.records++
	if len(r.out.buf) >= r.opts.FlushBytes {
		r.Flush()
	}
}

// Flush writes what is buffered. After a failed write, writing pauses for a
// second and the packets arriving meanwhile are counted as dropped. It
// returns ErrReaderGone once a stream's reader went away; write errors of
// files are counted and survived.
func (r *Rotator) Flush() error {
	if r.closed != nil {
		if r.out != nil {
			r.drop(r.out.discard())
		}
		return r.closed
	}
	if r.out == nil || len(r.out.buf) == 0 {
		return nil
	}
	if r.failing && r.opts.Now().Before(r.failUntil) {
		r.drop(r.out.discard())
		return nil
	}
	pkts, bytes, err := r.out.flush()
	if err != nil && !r.out.seekable && errors.Is(err, syscall.EPIPE) {
		// Nobody reads the stream any more: the capture is over.
		r.closed = fmt.Errorf("%w: %v", ErrReaderGone, err)
		r.drop(pkts)
		return r.closed
	}
	if err != nil {
		r.stats.WriteErrors.Add(1)
		r.drop(pkts)
		r.failUntil = r.opts.Now().Add(retryInterval)
		if !r.failing {
			r.failing = true
			r.opts.Logger.Error("write failed; dropping packets until writing works again", "err", err)
		}
		return nil
	}
	if r.failing {
		r.failing = false
		r.opts.Logger.Info("writing resumed", "file", r.out.name, "packets_lost", r.lost)
		r.lost = 0
	}
	r.stats.Packets.Add(uint64(pkts))
	r.stats.Bytes.Add(uint64(bytes))
	r.checkUnlinked()
	return nil
}

// checkUnlinked starts a new file, about once a second, when the current
// one was removed (its directory deleted, a careless cleanup): writing on
// would only feed a file no one can open.
func (r *Rotator) checkUnlinked() {
	if r.out == nil || !r.out.seekable {
		return
	}
	now := r.opts.Now()
	if now.Sub(r.checked) < time.Second {
		return
	}
	r.checked = now
	st, err := r.out.f.Stat()
	if err != nil {
		return
	}
	// Its name gone counts too: a subscriber (the upload spool) may hold
	// another link to it.
	_, err = os.Lstat(r.out.name)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink == 0 || errors.Is(err, fs.ErrNotExist) {
		r.opts.Logger.Error("the capture file was removed; starting a new one", "file", r.out.name)
		r.rotate(false)
	}
}

func (r *Rotator) drop(n int) {
	r.stats.Dropped.Add(uint64(n))
	r.lost += uint64(n)
}

// reopen retries opening a file after a failed rotation, once a second.
func (r *Rotator) reopen() bool {
	now := r.opts.Now()
	if now.Before(r.failUntil) {
		return false
	}
	if err := r.openNext(maxSkips); err != nil {
		r.stats.WriteErrors.Add(1)
		r.failUntil = now.Add(retryInterval)
		return false
	}
	return true
}

// Deadline returns when the next -G rotation is due (zero without -G).
func (r *Rotator) Deadline() time.Time {
	if r.opts.Interval <= 0 {
		return time.Time{}
	}
	return r.opened.Add(r.opts.Interval)
}

// Tick rotates if the -G period is over. It returns ErrFileLimit when the
// -W limit of files has been reached; the last file is then closed.
func (r *Rotator) Tick() error {
	d := r.Deadline()
	if d.IsZero() {
		return nil
	}
	now := r.opts.Now()
	if now.Before(d) {
		return nil
	}
	r.timeFiles++
	if r.opts.FileCount > 0 && r.opts.FileSize == 0 && r.timeFiles >= r.opts.FileCount {
		r.closeCurrent()
		return ErrFileLimit
	}
	r.opened = now
	r.sizeCount = 0
	r.rotate(true)
	return nil
}

// Rotate closes the current file and starts the next now (SIGHUP). A
// stream does not rotate: a second header would corrupt it.
func (r *Rotator) Rotate() {
	if r.Stream() {
		r.opts.Logger.Warn("a stream does not rotate", "output", r.opts.Path)
		return
	}
	r.rotate(false)
}

func (r *Rotator) rotate(onClock bool) {
	if r.out != nil {
		r.closeCurrent()
		r.stats.Rotations.Add(1)
	}
	if !onClock {
		r.advance()
	}
	if err := r.openNext(maxSkips); err != nil {
		r.stats.WriteErrors.Add(1)
		r.failUntil = r.opts.Now().Add(retryInterval)
		r.opts.Logger.Error("cannot open the next capture file; dropping packets until it can be opened", "err", err)
	}
}

// closeCurrent writes the statistics, flushes and closes the current file
// and announces it.
func (r *Rotator) closeCurrent() {
	if r.out == nil {
		return
	}
	if len(r.sources) > 0 {
		r.enc.trailer(r.out, r.interfaceStats(), r.started, r.opts.Now())
	}
	r.failUntil = time.Time{} // a last try for what is buffered
	r.Flush()
	out := r.out
	r.out = nil
	r.spare = out.buf
	if out.seekable {
		r.closing(out)
	}
	if err := out.close(); err != nil {
		r.stats.WriteErrors.Add(1)
		r.opts.Logger.Error("close failed", "err", err)
	}
	if out.seekable {
		r.announce(out)
	}
}

// interfaceStats gives the counts of each interface for the statistics
// blocks.
func (r *Rotator) interfaceStats() []ifaceStats {
	stats := make([]ifaceStats, len(r.sources))
	for i, s := range r.sources {
		stats[i] = ifaceStats{Received: s.received, Filtered: s.filtered, Delivered: s.delivered}
	}
	if r.opts.OSDrops != nil && len(stats) > 0 {
		stats[0].OSDropped = r.opts.OSDrops()
	}
	return stats
}

// Close flushes and closes the last file.
func (r *Rotator) Close() {
	r.closeCurrent()
}
