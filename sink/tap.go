package sink

import (
	"time"

	"github.com/dpcap/dpcap/pcapout"
)

// Tap sees the inner frames an engine writes, as it writes them: the live
// viewers of package sink/live. Each engine has a Tap of its own, called
// from the engine's goroutine only, and it must never block: whatever it
// keeps it copies, and a consumer that falls behind loses its own copies,
// never the engine's packets.
type Tap interface {
	// Source declares the engine's source i (numbered from 0, as sources
	// first appear) before its first frame.
	Source(i int, s SourceInfo)
	// Frame offers a frame of source src, captured at ts, length bytes on
	// the wire, as it is written to the file; data is valid only during
	// the call.
	Frame(src int, ts time.Time, data []byte, length int)
	// Flush ends a batch: what was offered since the last Flush may be
	// handed on.
	Flush()
}

// SourceInfo says where a source's copies come from.
type SourceInfo struct {
	// Interface names the source as the files do.
	Interface pcapout.Interface
	// Port names the port of the port map the copies came from, and To,
	// for a PF's copy headed to a VF, that VF ("" when none).
	Port, To string
}
