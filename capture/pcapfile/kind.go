package pcapfile

import "github.com/dpcap/dpcap/capture"

// -r FILE selects a capture file.
func init() {
	capture.Register(capture.Kind{Name: "file", Flag: "r", Offline: true, Open: openKind,
		Usage: "  -r FILE          read envelopes from a capture file\n"})
}

// openKind opens the capture file cfg.Target ("-" for standard input).
func openKind(cfg capture.Config) (capture.Opened, error) {
	src, err := OpenSource(cfg.Target)
	if err != nil {
		return capture.Opened{}, err
	}
	return capture.Opened{Sources: []capture.Source{src}, Desc: cfg.Target}, nil
}
