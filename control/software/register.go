//go:build linux

package software

import (
	"flag"
	"fmt"

	"github.com/dpcap/dpcap/control"
)

func init() {
	control.Register(control.Registration{
		Name:     "software",
		Synopsis: "[--port NAME=IFACE ...] [flags]",
		Summary:  "mirror each port's Linux interface and send the copies as the NIC would",
		Usage: `  --mirror METHOD     the software backend's method: auto (default: in the
                      kernel with tc BPF where allowed, else AF_PACKET), bpf
                      or af_packet; dpcap status shows the one in use
`,
		Flags: func(fs *flag.FlagSet) control.NewBackend {
			method := fs.String("mirror", "auto", "")
			return func(o control.Options) (control.Backend, error) {
				m := *method
				switch m {
				case "auto":
					m = "" // mirror.MethodAuto
				case "bpf", "af_packet":
				default:
					return nil, control.UsageError(fmt.Errorf("invalid mirror method %q: want auto, bpf or af_packet", m))
				}
				return New(o.Ports, m, o.Logger), nil
			}
		},
	})
}
