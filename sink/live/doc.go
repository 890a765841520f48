// Package live serves the inner frames sinkd writes to live viewers over
// HTTP(S), as docs/LIVE.md describes: sinkd --live ADDR, read by curl,
// dpcap watch (package sink/live/client) or Wireshark.
//
// It is one of sinkd's outputs (package sink/output) that takes no files
// but frames: each engine gets a tap (output.Tapper) that copies the frames
// a viewer wants into a batch per viewer and, at the end of the engine's
// batch, hands each to its viewer's queue without waiting. A queue is
// bounded in bytes; a batch that does not fit is lost for that viewer
// alone, counted, and while its queue stays full the tap only counts. Each
// viewer's own goroutine (its HTTP handler) applies its expression,
// encodes with pcapout.Stream and writes. The capture never waits for a
// viewer, and the files are written as without viewers.
//
// Who may watch what is package sink/live/access's: bearer tokens, each
// with its ports, and TLS.
package live
