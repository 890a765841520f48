//go:build minimal

package main

import (
	"errors"
	"flag"

	"github.com/dpcap/dpcap/sink/output"
)

// A build with -tags minimal (make demo) leaves out the S3 client, and so
// package archive/upload: --upload is refused, saying how to get it.
func init() {
	output.Register(output.Kind{Name: "upload", Usage: `
Object storage: not in this build (-tags minimal, as make demo builds it);
  --upload is refused. 'make build' builds sinkd with it.
`, Flags: func(fs *flag.FlagSet) output.Flags {
		u := &noUpload{}
		fs.StringVar(&u.url, "upload", "", "")
		return u
	}})
}

// noUpload is --upload in a build without it.
type noUpload struct{ url string }

func (u *noUpload) Check(string, map[string]bool) (bool, error) {
	if u.url != "" {
		return false, errors.New("--upload: this sinkd was built without uploads (-tags minimal); 'make build' builds it with them")
	}
	return false, nil
}

func (u *noUpload) New(output.Env) (output.Consumer, error) {
	return nil, errors.New("this sinkd was built without uploads")
}
