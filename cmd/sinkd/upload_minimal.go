//go:build minimal

package main

import (
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/dpcap/dpcap/pcapout"
)

const uploadUsage = `
Object storage: not in this build (-tags minimal, as make demo builds it);
  --upload is refused. 'make build' builds sinkd with it.
`

// uploadFlags refuses --upload in a build without the object-storage
// client.
type uploadFlags struct {
	url, spool string
	wait       time.Duration
}

func (u *uploadFlags) register(fs *flag.FlagSet) { fs.StringVar(&u.url, "upload", "", "") }

func (u *uploadFlags) check(string, map[string]bool) error {
	if u.url != "" {
		return errors.New("--upload: this sinkd was built without uploads (-tags minimal); 'make build' builds it with them")
	}
	return nil
}

func (u *uploadFlags) start(*slog.Logger, func(pcapout.ClosedFile)) (shipper, error) {
	return nil, errors.New("this sinkd was built without uploads")
}
