package sink

import (
	"context"
	"log/slog"
	"time"

	"github.com/dpcap/dpcap/portmap"
)

// FollowPortMap keeps the port map current until ctx ends: it reads f again
// when the file changed (looked at every interval) and whenever reread
// receives (sinkd's SIGHUP), and hands each map it reads to apply. A map
// that cannot be read or is refused leaves the one in use, logged once per
// change of the file, and only once the file stayed so for a look: a map
// written in place (cp) may be read half-written.
func FollowPortMap(ctx context.Context, f *portmap.File, every time.Duration, reread <-chan struct{}, apply func(*portmap.Identifier), logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	w := mapFollower{f: f, apply: apply, logger: logger}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.look(false)
		case <-reread:
			w.look(true)
		}
	}
}

// mapFollower is FollowPortMap's state between two looks at the file.
type mapFollower struct {
	f      *portmap.File
	apply  func(*portmap.Identifier)
	logger *slog.Logger
	// refused is a failed read not reported yet: a map being written in
	// place (cp, an editor) can be read half-written, and is refused
	// only if it stays so for a look.
	refused error
}

// look reads the file if it changed, or at once when force is set (a
// reread asked for, whose failure is reported at once).
func (w *mapFollower) look(force bool) {
	m, notes, changed, err := w.f.Reload(force)
	if !changed {
		w.report() // it stayed so for a look
		return
	}
	w.refused = nil
	if err != nil {
		w.refused = err
		if force {
			w.report()
		}
		return
	}
	x, more := portmap.NewIdentifier(m)
	for _, n := range append(notes, more...) {
		w.logger.Warn("port map: " + n)
	}
	// Logged first, so the line is out before anything the new map names.
	w.logger.Info("port map read again", "file", w.f.Path, "ports", len(m.Ports))
	w.apply(x)
}

// report logs the read refused, if any, once.
func (w *mapFollower) report() {
	if w.refused != nil {
		w.logger.Error("port map not read again: the one in use stays", "err", w.refused)
		w.refused = nil
	}
}
