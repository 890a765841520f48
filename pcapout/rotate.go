// Package pcapout writes capture files the way tcpdump does: nanosecond pcap
// or pcapng (an interface per source, statistics at close), rotated by size
// (-C), on the clock (-G, strftime names) or on demand, as a ring or with a
// file limit (-W), with a command run on each closed file (-z), and
// optionally split into one set of files per source. Every file is a
// complete capture on its own, and a write error never leaves a torn record
// behind.
package pcapout

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// ErrFileLimit is returned when -G rotation has created the -W number of
// files: like tcpdump, the capture is then over.
var ErrFileLimit = errors.New("maximum file limit reached")

// DefaultFlushBytes is how much is buffered before a write to the file.
const DefaultFlushBytes = 256 << 10

// retryInterval is how long writing pauses after a failed write.
const retryInterval = time.Second

// Options configure a Rotator. Path is required.
type Options struct {
	// Path is the file name ("-" for standard output); with Interval it may
	// hold strftime conversions.
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
	// PostRotate is a program run with each closed file as its argument (-z).
	PostRotate string
	// FlushBytes is the write chunk size; DefaultFlushBytes when zero.
	FlushBytes int
	Logger     *slog.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// InterfaceStats, when set, gives the counts of a pcapng interface for
	// the statistics block written as a file closes.
	InterfaceStats func(iface int) InterfaceStats
	// Stats receives the running totals; a Rotator keeps its own when nil.
	// A Split shares one among its files.
	Stats *Stats
}

// Stats are running totals, safe to read while the Rotator works.
type Stats struct {
	Packets     atomic.Uint64 // packets written to disk
	Bytes       atomic.Uint64 // bytes written to disk, headers included
	Rotations   atomic.Uint64 // files closed to open the next
	WriteErrors atomic.Uint64 // failed writes or file creations
	Dropped     atomic.Uint64 // packets lost to write errors
}

// Rotator writes packets to a sequence of capture files. It is not safe for
// concurrent use, except for its Stats.
type Rotator struct {
	opts   Options
	stats  *Stats
	out    *output
	enc    encoder
	ifaces []Interface
	// delivered counts each interface's packets in the current file.
	delivered []uint64
	started   time.Time

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
	hooks     sync.WaitGroup
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
		opts.SnapLen = 262144
	}
	if opts.Path == "-" && (opts.FileSize > 0 || opts.Interval > 0) {
		return nil, errors.New("rotation (-C, -G) needs a file name, not standard output")
	}
	r := &Rotator{opts: opts, stats: opts.Stats}
	if r.stats == nil {
		r.stats = &Stats{}
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
	if err := r.openNext(); err != nil {
		return nil, err
	}
	return r, nil
}

// Stats returns the running totals.
func (r *Rotator) Stats() *Stats { return r.stats }

// Closed reports that the reader of a stream (a pipe, a fifo) went away.
func (r *Rotator) Closed() error { return r.closed }

// Stream reports whether the output is a stream (standard output, a
// fifo) rather than a file, and so wants a flush after every batch.
func (r *Rotator) Stream() bool { return r.out != nil && !r.out.seekable }

// SetInterfaceStats implements Output.
func (r *Rotator) SetInterfaceStats(f func(int) InterfaceStats) { r.opts.InterfaceStats = f }

// AddInterface declares a source and returns its interface number for
// WritePacket. In pcapng it is described in this file and every later one;
// pcap has a single unnamed interface, 0.
func (r *Rotator) AddInterface(ifc Interface) int {
	if r.opts.Format != FormatPcapng {
		return 0
	}
	r.ifaces = append(r.ifaces, ifc)
	r.delivered = append(r.delivered, 0)
	if r.out != nil {
		r.enc.addInterface(r.out, ifc)
	}
	return len(r.ifaces) - 1
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

func (r *Rotator) openNext() error {
	var out *output
	if r.opts.Path == "-" {
		out = stdoutOutput()
	} else {
		var err error
		if out, err = createFile(r.fileName()); err != nil {
			return err
		}
	}
	// The write buffer passes from file to file: a capture rotating every
	// few seconds should not make garbage of half a megabyte each time.
	if need := r.opts.FlushBytes + r.opts.SnapLen + 16; cap(r.spare) >= need {
		out.buf, r.spare = r.spare[:0], nil
	} else {
		out.buf = make([]byte, 0, need)
	}
	r.enc.header(out, r.ifaces)
	out.hdrLen = len(out.buf)
	r.out = out
	clear(r.delivered)
	// The header goes out at once, so that even an idle period leaves a
	// valid (empty) capture file.
	r.Flush()
	return nil
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
	if r.out == nil && !r.reopen() {
		r.drop(1)
		return
	}
	if r.opts.FileSize > 0 && r.out.records > 0 && r.out.size()+16+int64(len(data)) > r.opts.FileSize {
		r.rotate(false)
		if r.out == nil {
			r.drop(1)
			return
		}
	}
	r.enc.packet(r.out, iface, ts, data, length)
	if iface < len(r.delivered) {
		r.delivered[iface]++
	}
	r.out.pending++
	r.out.records++
	if len(r.out.buf) >= r.opts.FlushBytes {
		r.Flush()
	}
}

// Flush writes what is buffered. After a failed write, writing pauses for a
// second and the packets arriving meanwhile are counted as dropped.
func (r *Rotator) Flush() {
	if r.out == nil || len(r.out.buf) == 0 {
		return
	}
	if r.failing && r.opts.Now().Before(r.failUntil) {
		r.drop(r.out.discard())
		return
	}
	pkts, bytes, err := r.out.flush()
	if err != nil && !r.out.seekable && errors.Is(err, syscall.EPIPE) {
		// Nobody reads the stream any more: the capture is over.
		r.closed = err
		r.drop(pkts)
		return
	}
	if err != nil {
		r.stats.WriteErrors.Add(1)
		r.drop(pkts)
		r.failUntil = r.opts.Now().Add(retryInterval)
		if !r.failing {
			r.failing = true
			r.opts.Logger.Error("write failed; dropping packets until writing works again", "err", err)
		}
		return
	}
	if r.failing {
		r.failing = false
		r.opts.Logger.Info("writing resumed", "file", r.out.name, "packets_lost", r.lost)
		r.lost = 0
	}
	r.stats.Packets.Add(uint64(pkts))
	r.stats.Bytes.Add(uint64(bytes))
	r.checkUnlinked()
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
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink == 0 {
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
	if err := r.openNext(); err != nil {
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
		r.out = nil
		return ErrFileLimit
	}
	r.opened = now
	r.sizeCount = 0
	r.rotate(true)
	return nil
}

// Rotate closes the current file and starts the next now (SIGHUP).
func (r *Rotator) Rotate() { r.rotate(false) }

func (r *Rotator) rotate(onClock bool) {
	if r.out != nil {
		r.closeCurrent()
		r.stats.Rotations.Add(1)
	}
	if !onClock {
		r.sizeCount++
		if r.opts.FileCount > 0 && r.opts.FileSize > 0 && r.opts.Interval == 0 && r.sizeCount >= r.opts.FileCount {
			r.sizeCount = 0 // ring
		}
	}
	r.out = nil
	if err := r.openNext(); err != nil {
		r.stats.WriteErrors.Add(1)
		r.failUntil = r.opts.Now().Add(retryInterval)
		r.opts.Logger.Error("cannot open the next capture file; dropping packets until it can be opened", "err", err)
	}
}

// closeCurrent writes the statistics, flushes and closes the current file
// and runs -z on it.
func (r *Rotator) closeCurrent() {
	if len(r.ifaces) > 0 {
		stats := make([]InterfaceStats, len(r.ifaces))
		if r.opts.InterfaceStats != nil {
			for i := range stats {
				stats[i] = r.opts.InterfaceStats(i)
			}
		}
		r.enc.trailer(r.out, stats, r.delivered, r.started, r.opts.Now())
	}
	r.failUntil = time.Time{} // a last try for what is buffered
	r.Flush()
	name := r.out.name
	r.spare = r.out.buf
	if err := r.out.close(); err != nil {
		r.stats.WriteErrors.Add(1)
		r.opts.Logger.Error("close failed", "err", err)
	}
	if r.opts.PostRotate != "" && name != "-" {
		r.runHook(name)
	}
}

func (r *Rotator) runHook(name string) {
	cmd := exec.Command(r.opts.PostRotate, name)
	if err := cmd.Start(); err != nil {
		r.opts.Logger.Error("post-rotate command failed to start", "cmd", r.opts.PostRotate, "file", name, "err", err)
		return
	}
	r.hooks.Add(1)
	go func() {
		defer r.hooks.Done()
		if err := cmd.Wait(); err != nil {
			r.opts.Logger.Error("post-rotate command failed", "cmd", r.opts.PostRotate, "file", name, "err", err)
		}
	}()
}

// Close flushes and closes the last file, then waits for running -z
// commands.
func (r *Rotator) Close() {
	if r.out != nil {
		r.closeCurrent()
		r.out = nil
	}
	r.hooks.Wait()
}
