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
	// refused is a failed read not reported yet: a map being written in
	// place (cp, an editor) can be read half-written, and is refused
	// only if it stays so for a look.
	var refused error
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reread:
			force = true
		}
		m, notes, changed, err := f.Reload(force)
		if !changed {
			if refused != nil {
				logger.Error("port map not read again: the one in use stays", "err", refused)
				refused = nil
			}
			continue
		}
		refused = nil
		if err != nil {
			if force {
				logger.Error("port map not read again: the one in use stays", "err", err)
			} else {
				refused = err
			}
			continue
		}
		x, more := portmap.NewIdentifier(m)
		for _, n := range append(notes, more...) {
			logger.Warn("port map: " + n)
		}
		// Logged first, so the line is out before anything the new map names.
		logger.Info("port map read again", "file", f.Path, "ports", len(m.Ports))
		apply(x)
	}
}
