package dpdk

import (
	"errors"
	"flag"
	"strings"

	"github.com/dpcap/dpcap/control"
)

// open makes the backend; nil in a build without the dpdk tag, which has
// no DPDK to link.
var open func(ealArgs []string, ports map[string]string) (control.Backend, error)

// errNotBuilt says what a build without DPDK lacks and how to get it.
var errNotBuilt = errors.New("this dpcap was built without DPDK: rebuild with CGO_ENABLED=1 -tags dpdk (needs libdpdk-dev)")

func init() {
	control.Register(control.Registration{
		Name:     "dpdk",
		Synopsis: "--eal 'EAL ARGS' --port pf0=DEV --port NAME=DEV ...",
		Summary:  "program the NIC's E-Switch with rte_flow",
		Usage: `  --eal ARGS          the dpdk backend's EAL arguments, e.g. '-a 0000:08:00.0,
                      representor=vf[0-3],dv_flow_en=1' (primary) or
                      '--proc-type=secondary --file-prefix dp' (attach)
`,
		Flags: func(fs *flag.FlagSet) control.NewBackend {
			eal := fs.String("eal", "", "")
			return func(o control.Options) (control.Backend, error) {
				if len(o.Ports) == 0 {
					return nil, control.UsageError(errors.New("the dpdk backend needs ports: give --port pf0=DPDK-PORT --port NAME=DPDK-PORT"))
				}
				if open == nil {
					return nil, errNotBuilt
				}
				return open(strings.Fields(*eal), o.Ports)
			}
		},
	})
}
