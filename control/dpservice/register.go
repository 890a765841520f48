package dpservice

import (
	"errors"
	"flag"

	"github.com/dpcap/dpcap/control"
)

func init() {
	control.Register(control.Registration{
		Name:     "dpservice",
		Synopsis: "[--dpservice HOST:PORT] [flags]",
		Summary:  "drive dp-service, the dataplane that owns the NIC, through its gRPC API (ports are its interface ids and pf0)",
		Usage: `  --dpservice ADDR    dp-service's gRPC API (default localhost:1337); dpcap
                      watches it and applies the capture again after it
                      restarts, once its orchestrator initialized it
`,
		Flags: func(fs *flag.FlagSet) control.NewBackend {
			addr := fs.String("dpservice", DefaultAddress, "")
			return func(o control.Options) (control.Backend, error) {
				if len(o.Ports) > 0 {
					return nil, control.UsageError(errors.New("the dpservice backend takes no --port: its ports are dp-service's interface ids"))
				}
				b, err := New(*addr, o.Logger)
				if err != nil {
					return nil, control.UsageError(err)
				}
				return b, nil
			}
		},
	})
}
